// The benchmark suite's logic on a micro configuration (seconds): JSON structure, ratios computed from
// the two sides (ours measured here, the PyTorch side from a recorded JSON), targets, Markdown, CLI errors.
import { strict as assert } from 'node:assert';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { parseArgs, runBench } from '../../bench/main.js';
import { markdown, type BenchDoc } from '../../bench/report.js';
import { trainStepFlops } from '../../bench/cases.js';
import type { TorchResult } from '../../bench/torch.js';
import { fpdmFrom, modelFlops, modelName, validateConfig, type DiTConfig } from '../../src/models/index.js';
import { UserError } from '../../src/util/errors.js';

const trunk: DiTConfig = validateConfig({
  kind: 'dit',
  inputSize: 8,
  patchSize: 2,
  inChannels: 4,
  hiddenSize: 32,
  depth: 6,
  numHeads: 2,
  mlpRatio: 4,
  classDropoutProb: 0.1,
  numClasses: 10,
  learnSigma: true,
});
const ditName = modelName(trunk);
const fpdmName = modelName(fpdmFrom(trunk));

let dir: string;
let doc: BenchDoc;
// a recorded PyTorch side for the micro models (values chosen for the test, not measured)
const torch: TorchResult = {
  available: true,
  torch: 'test',
  cuda: 'test',
  device: 'test',
  tf32: { matmul: false, cudnn: false },
  train: [
    {
      model: ditName,
      params: 0,
      batch: 2,
      noGradIters: null,
      withGradIters: null,
      medianSeconds: 0.5,
      imagesPerSecond: 4,
      peakBytes: 1e6,
    },
    {
      model: fpdmName,
      params: 0,
      batch: 2,
      noGradIters: 5,
      withGradIters: 7,
      medianSeconds: 1,
      imagesPerSecond: 2,
      peakBytes: 2e6,
    },
  ],
  sample: [
    {
      model: ditName,
      batch: 2,
      steps: 2,
      iters: null,
      reuse: false,
      blockEvaluations: 12,
      medianSeconds: 0.1,
      imagesPerSecond: 20,
      peakBytes: 1e6,
    },
  ],
  inception: null,
  errors: [],
};

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'bench-test-'));
  const torchPath = join(dir, 'torch.json');
  writeFileSync(torchPath, JSON.stringify(torch));
  doc = await runBench({
    suites: ['train', 'sample'],
    backend: 'cpu',
    quick: true,
    out: join(dir, 'out'),
    steps: 1,
    warmup: 1,
    batch: 2,
    torch: { json: torchPath },
    tiny: { trunk, batch: 2, budget: 2 },
  });
});

after(() => rmSync(dir, { recursive: true, force: true }));

test('writes <date>-<backend>-quick.json and latest-<backend>.md with provenance', () => {
  const files = readdirSync(join(dir, 'out')).sort();
  assert.deepEqual(files, [`${doc.date.slice(0, 10)}-cpu-quick.json`, 'latest-cpu.md']);
  const json = JSON.parse(readFileSync(join(dir, 'out', files[0]!), 'utf8')) as BenchDoc;
  assert.equal(json.backend.name, 'cpu');
  assert.ok(json.backend.device && json.versions['tfjs-core'] && json.versions.node);
  assert.equal(json.train.length, 2);
  assert.equal(json.sample.length, 3);
  const md = readFileSync(join(dir, 'out', 'latest-cpu.md'), 'utf8');
  assert.equal(md, markdown(json));
  assert.match(md, /## Targets/);
});

test('training rows: ratios are ours ÷ PyTorch from the two sides', () => {
  for (const r of doc.train) {
    assert.ok(r.ours, `${r.model} measured`);
    assert.ok(r.torch, `${r.model} matched with the PyTorch row`);
    assert.ok(r.ours.timing.seconds.length === 1 && r.ours.timing.warmup === 1);
    assert.ok(Math.abs(r.ours.imagesPerSecond - 2 / r.ours.timing.medianSeconds) < 1e-9);
    assert.equal(r.throughputRatio, r.ours.imagesPerSecond / r.torch.imagesPerSecond);
    // the memory ratio uses distinct live buffers (a buffer with several tensor handles counts once)
    assert.equal(r.memoryRatio, r.ours.buffers!.peakBufferBytes / r.torch.peakBytes);
    assert.ok(r.ours.buffers!.peakBufferBytes <= r.ours.memory!.peakTensorBytes, `${r.model}: buffers above handles`);
    assert.equal(r.gradCheckpoint, false);
    // the peak includes at least the weights, both AdamW moments and the EMA copy (4 × params × 4 bytes)
    assert.ok(
      r.ours.buffers!.peakBufferBytes >= 16 * r.ours.params,
      `${r.model}: peak ${r.ours.buffers!.peakBufferBytes} < 16·params`,
    );
    assert.ok(Math.abs(r.ours.gflopsPerSecond - r.ours.stepFlops / r.ours.timing.medianSeconds / 1e9) < 1e-9);
    // per-step profile: every step (warm-up, timed, profiled) recorded; kernels counted and profiled
    const p = r.ours.profile;
    assert.equal(p.warmupSteps, 1);
    assert.equal(p.seconds.length, 3);
    assert.equal(p.cpuSeconds.length, 3);
    assert.equal(p.seconds[1], r.ours.timing.seconds[0]);
    assert.ok(p.perStep.tfjsKernels > 100, `${r.model}: ${p.perStep.tfjsKernels} kernels per step`);
    // the profiled step runs the same kernels as a timed one
    assert.ok(
      Math.abs(p.kernels.kernels - p.perStep.tfjsKernels) <= 0.05 * p.perStep.tfjsKernels,
      `${r.model}: profiled ${p.kernels.kernels} vs ${p.perStep.tfjsKernels}`,
    );
    assert.ok(p.kernels.top.length > 0 && p.kernels.top[0]!.count > 0);
  }
  const f = doc.train.find((r) => r.model === fpdmName)!;
  assert.equal(f.ours!.noGradIters, 5);
  assert.equal(f.ours!.withGradIters, 7);
});

test('train-step FLOPs convention: 3 × forward of the graph part + no-grad iterations forward only', () => {
  const fc = fpdmFrom(trunk, { noGradIters: [5, 5], withGradIters: [7, 7] });
  const m = modelFlops(fc);
  assert.equal(trainStepFlops(fc, 2), 2 * (3 * (m.fixed + 7 * m.perIteration) + 5 * m.perIteration));
  assert.equal(trainStepFlops(trunk, 3), 3 * 3 * modelFlops(trunk).forward());
});

test('sampling rows: budget plan and ratio where the PyTorch side has the configuration', () => {
  const [dit, fp, reuse] = doc.sample;
  assert.equal(dit!.ours!.steps, 2);
  assert.equal(dit!.ours!.blockEvaluations, 12);
  assert.equal(fp!.ours!.iters, 4);
  assert.equal(reuse!.ours!.steps, 4);
  assert.equal(reuse!.ours!.iters, 1);
  assert.equal(reuse!.ours!.reuse, true);
  assert.equal(dit!.throughputRatio, dit!.ours!.imagesPerSecond / 20);
  assert.equal(fp!.torch, null);
  assert.equal(fp!.throughputRatio, null);
  assert.ok(Math.abs(dit!.ours!.imagesPerSecondAt20 - (dit!.ours!.imagesPerSecond * 2) / 20) < 1e-12);
});

test('targets: memory claim from our two rows; unmeasured targets say so', () => {
  const mem = doc.targets.find((t) => t.target.startsWith(`FPDM(${ditName})`))!;
  const d = doc.train.find((r) => r.model === ditName)!;
  const f = doc.train.find((r) => r.model === fpdmName)!;
  assert.equal(mem.measured, f.ours!.buffers!.peakBufferBytes / d.ours!.buffers!.peakBufferBytes);
  assert.equal(mem.status, mem.measured! <= 0.45 ? 'met' : 'not met');
  const s2 = doc.targets.find((t) => t.target.startsWith('DiT-S/2 training'))!;
  assert.equal(s2.status, 'not measured');
  const samp = doc.targets.find((t) => t.target.includes(`sampling ${ditName}, 2 steps`))!;
  assert.equal(samp.status, samp.measured! >= 0.5 ? 'met' : 'not met');
});

test('command line: bad suites and options are user errors', () => {
  assert.throws(() => parseArgs(['--suite', 'train,bogus']), UserError);
  assert.throws(() => parseArgs(['--steps', '0']), UserError);
  assert.throws(() => parseArgs(['--frobnicate']), UserError);
  const o = parseArgs(['--suite', 'cpu', '--backend', 'wasm', '--quick', '--no-torch']);
  assert.deepEqual(o.suites, ['cpu']);
  assert.equal(o.backend, 'wasm');
  assert.equal(o.quick, true);
  assert.equal(o.torch, 'skip');
  assert.deepEqual(o.gradCheckpoint, ['off']);
  assert.deepEqual(parseArgs(['--grad-checkpoint', 'both', '--sizes', 'S']).gradCheckpoint, ['off', 'on']);
  assert.deepEqual(parseArgs(['--sizes', 'S,XL']).sizes, ['S', 'XL']);
  assert.throws(() => parseArgs(['--grad-checkpoint', 'sometimes']), UserError);
  assert.throws(() => parseArgs(['--sizes', 'M']), UserError);
});
