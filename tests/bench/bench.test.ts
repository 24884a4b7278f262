// The benchmark suite's logic on a micro configuration (seconds): JSON structure, ratios computed from
// the two sides (ours measured here, the PyTorch side from a recorded JSON), targets, Markdown, CLI errors.
import { strict as assert } from 'node:assert';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { parseArgs, runBench } from '../../bench/main.js';
import { markdown, sampleRow, targets, trainRow, type BenchDoc } from '../../bench/report.js';
import { trainStepFlops } from '../../bench/cases.js';
import { torchRefArgs, type TorchResult, type TorchSample, type TorchTrain } from '../../bench/torch.js';
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
// a recorded PyTorch side for the micro models (values chosen for the test, not measured): float32 rows
// (DiT's without a precision key, as files written before autocast rows; FPDM's with it) and autocast
// float16 rows, listed first so that only pairing by key finds the float32 ones
const fp32Train: TorchTrain[] = [
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
    key: 'fp32',
    precision: 'float32 (TF32 off)',
  },
];
const fp32Sample: TorchSample = {
  model: ditName,
  batch: 2,
  steps: 2,
  iters: null,
  reuse: false,
  blockEvaluations: 12,
  medianSeconds: 0.1,
  imagesPerSecond: 20,
  peakBytes: 1e6,
};
const autocastOf = <T extends TorchTrain | TorchSample>(r: T, speedup: number): T => ({
  ...r,
  key: 'fp16',
  precision: 'autocast float16',
  medianSeconds: r.medianSeconds / speedup,
  imagesPerSecond: r.imagesPerSecond * speedup,
  peakBytes: r.peakBytes * 0.625,
});
const scaler = (skippedTimedSteps: number): TorchTrain['gradScaler'] => ({
  api: "torch.amp.GradScaler('cuda')",
  enabled: true,
  initScale: 65536,
  finalScale: 65536 / 2 ** skippedTimedSteps,
  growthInterval: 2000,
  skippedTimedSteps,
});
const torch: TorchResult = {
  available: true,
  torch: 'test',
  cuda: 'test',
  device: 'test',
  tf32: { matmul: false, cudnn: false },
  precisions: ['fp32', 'fp16'],
  autocast: { dtype: 'float16', device: 'cuda', fp16ReducedPrecisionReduction: true },
  train: [
    { ...autocastOf(fp32Train[0]!, 3), steps: 4, gradScaler: scaler(1) },
    { ...autocastOf(fp32Train[1]!, 2.5), steps: 4, gradScaler: scaler(0) },
    ...fp32Train,
  ],
  sample: [autocastOf(fp32Sample, 2), fp32Sample],
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
    // at fp32 the float32 row, and nothing of the autocast rows
    assert.deepEqual(
      r.torch,
      fp32Train.find((t) => t.model === r.model),
    );
    assert.equal('autocast' in r, false);
    assert.ok(r.ours.timing.seconds.length === 1 && r.ours.timing.warmup === 1);
    assert.ok(Math.abs(r.ours.imagesPerSecond - 2 / r.ours.timing.medianSeconds) < 1e-9);
    assert.equal(r.throughputRatio, r.ours.imagesPerSecond / r.torch.imagesPerSecond);
    // the memory ratio uses distinct live buffers (a buffer with several tensor handles counts once), plus
    // the direct-dispatch scratch where reported (webgpu only: none here)
    assert.equal(r.ours.memory!.directScratchBytes, undefined);
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

// ---- --precision mixed: our rows against PyTorch's autocast float16 and float32 rows of the same call ----

/** The rows of `doc` paired again as a --precision mixed run pairs them (our measurements, the recorded PyTorch side). */
function mixedDoc(side: TorchResult = torch): BenchDoc {
  const train = doc.train.map((r) => trainRow(r.model, r.batch, r.ours, side, undefined, r.gradCheckpoint, true));
  const sample = doc.sample.map((r) =>
    sampleRow(
      r.label,
      { model: r.ours!.model, steps: r.ours!.steps, iters: r.ours!.iters, reuse: r.ours!.reuse, batch: r.ours!.batch },
      r.ours,
      side,
      undefined,
      true,
    ),
  );
  return {
    ...doc,
    backend: { ...doc.backend, precision: 'mixed' },
    torch: side,
    train,
    sample,
    targets: targets(train, sample, true),
  };
}

test("webgpu's direct-dispatch scratch counts in our peak: the memory ratios and the FPDM/DiT target add it", () => {
  const withScratch = (r: BenchDoc['train'][number], scratch: number): BenchDoc['train'][number] =>
    trainRow(
      r.model,
      r.batch,
      { ...r.ours!, memory: { ...r.ours!.memory!, directScratchBytes: scratch } },
      torch,
      undefined,
      r.gradCheckpoint,
      true,
    );
  const rows = doc.train.map((r) => withScratch(r, 3 * 2 ** 20));
  for (const r of rows) {
    const f16 = torch.train!.find((t) => t.model === r.model && t.key === 'fp16')!;
    assert.equal(r.autocast!.memoryRatio, (r.ours!.buffers!.peakBufferBytes + 3 * 2 ** 20) / f16.peakBytes);
  }
  const target = targets(rows, [], true).find((t) => t.target.includes('peak training memory'));
  assert.ok(target, 'the FPDM/DiT memory target is listed');
  const of = (m: string) => rows.find((r) => r.model === m)!.ours!.buffers!.peakBufferBytes + 3 * 2 ** 20;
  const dit = rows.find((r) => !r.model.startsWith('FPDM'))!.model;
  assert.equal(target.measured, of(`FPDM(${dit}, pre=1, post=1)`) / of(dit));
});

/** The cells of a Markdown table's rows under the header line that starts with `first`, keyed by column name. */
function tableRows(md: string, first: string): Array<Record<string, string>> {
  const lines = md.split('\n');
  const at = lines.findIndex((l) => l.startsWith(`| ${first} |`));
  assert.ok(at >= 0, `a table starting with column '${first}'`);
  const cells = (l: string) => l.slice(2, -2).split(' | ');
  const head = cells(lines[at]!);
  const rows: Array<Record<string, string>> = [];
  for (let i = at + 2; i < lines.length && lines[i]!.startsWith('|'); i++)
    rows.push(Object.fromEntries(cells(lines[i]!).map((c, j) => [head[j]!, c])));
  return rows;
}

test('mixed: each training and sampling row paired with the autocast float16 and the float32 row by key; ratios ours ÷ each', () => {
  const d = mixedDoc();
  for (const r of d.train) {
    const f32 = fp32Train.find((t) => t.model === r.model)!;
    const f16 = torch.train!.find((t) => t.model === r.model && t.key === 'fp16')!;
    assert.equal(r.torch, f32);
    assert.equal(r.autocast!.torch, f16);
    assert.equal(r.throughputRatio, r.ours!.imagesPerSecond / f32.imagesPerSecond);
    assert.equal(r.autocast!.throughputRatio, r.ours!.imagesPerSecond / f16.imagesPerSecond);
    const ours = r.ours!.buffers!.peakBufferBytes + (r.ours!.memory?.directScratchBytes ?? 0);
    assert.equal(r.memoryRatio, ours / f32.peakBytes);
    assert.equal(r.autocast!.memoryRatio, ours / f16.peakBytes);
  }
  const [dit, fp] = d.sample;
  assert.equal(dit!.torch, fp32Sample);
  assert.equal(dit!.throughputRatio, dit!.ours!.imagesPerSecond / fp32Sample.imagesPerSecond);
  assert.equal(dit!.autocast!.throughputRatio, dit!.ours!.imagesPerSecond / (2 * fp32Sample.imagesPerSecond));
  // no PyTorch row of that configuration: both pairings empty, not another configuration's row
  assert.deepEqual(fp!.autocast, { torch: null, throughputRatio: null });
  assert.equal(fp!.torch, null);
  // a PyTorch result without autocast rows (an older file, or --torch-json of an fp32 call): fp32 only
  const old = mixedDoc({ ...torch, train: fp32Train, sample: [fp32Sample] });
  for (const r of old.train) assert.deepEqual(r.autocast, { torch: null, throughputRatio: null, memoryRatio: null });
  assert.equal(old.train[0]!.throughputRatio, d.train[0]!.throughputRatio);
});

test('mixed Markdown: both ratio columns, with the dtype and the loss scaling in the header', () => {
  const d = mixedDoc();
  const md = markdown(d);
  assert.match(md, /float32 \(TF32 off\) and autocast float16/);
  assert.match(md, /dynamic loss scaling by torch\.amp\.GradScaler\('cuda'\)/);
  assert.doesNotMatch(md, /no autocast rows/);
  // the GradScaler's skipped timed steps are reported (DiT's autocast row skipped 1 of 4)
  assert.ok(md.includes(`${ditName} 1 of 4`), 'skipped steps of the DiT row');
  assert.ok(!md.includes(`${fpdmName} 0 of 4`), 'rows without skipped steps are not listed');
  const fmt = (v: number | null | undefined) => (v === null || v === undefined ? '–' : `${v.toFixed(3)}×`);
  const train = tableRows(md, 'model');
  assert.equal(train.length, d.train.length);
  for (const [i, r] of d.train.entries()) {
    const cells = train[i]!;
    assert.equal(cells['model'], r.model);
    assert.equal(cells['× PyTorch autocast fp16'], fmt(r.autocast!.throughputRatio));
    assert.equal(cells['× PyTorch fp32'], fmt(r.throughputRatio));
    assert.equal(cells['PyTorch autocast fp16 img/s'], r.autocast!.torch!.imagesPerSecond.toFixed(2));
    assert.equal(cells['PyTorch fp32 img/s'], r.torch!.imagesPerSecond.toFixed(2));
    assert.equal(cells['memory × PyTorch autocast fp16'], fmt(r.autocast!.memoryRatio));
    assert.equal(cells['memory × PyTorch fp32'], fmt(r.memoryRatio));
    assert.equal(cells['ratio'], undefined, 'no unlabelled ratio column at mixed');
  }
  const sample = tableRows(md, 'configuration');
  assert.equal(sample[0]!['× PyTorch autocast fp16'], fmt(d.sample[0]!.autocast!.throughputRatio));
  assert.equal(sample[0]!['× PyTorch fp32'], fmt(d.sample[0]!.throughputRatio));
  assert.equal(sample[1]!['× PyTorch autocast fp16'], '–');
  // fp32: the columns of before, no word of autocast
  const plain = markdown(doc);
  assert.doesNotMatch(plain, /autocast/);
  const t32 = tableRows(plain, 'model');
  assert.equal(t32[0]!['ratio'], fmt(doc.train[0]!.throughputRatio));
  assert.equal(t32[0]!['× PyTorch fp32'], undefined);
});

test('mixed targets: ≥ 0.5× PyTorch autocast float16 and the stretch ≥ 1× PyTorch fp32, from the rows', () => {
  const d = mixedDoc();
  const dit = d.sample[0]!;
  const like = d.targets.find((t) => t.target === `sampling ${dit.label} ≥ 0.5× PyTorch autocast float16 (images/s)`)!;
  assert.equal(like.measured, dit.autocast!.throughputRatio);
  assert.equal(like.status, like.measured! >= 0.5 ? 'met' : 'not met');
  const stretch = d.targets.find(
    (t) => t.target === `sampling ${dit.label}, mixed precision ≥ 1× PyTorch fp32 (images/s; stretch)`,
  )!;
  assert.equal(stretch.measured, dit.throughputRatio);
  assert.equal(stretch.threshold, '≥ 1');
  assert.equal(stretch.status, stretch.measured! >= 1 ? 'met' : 'not met');
  // two speed targets per training preset and sampling row at mixed, one at fp32; the memory target once
  const speed = (ts: BenchDoc['targets']) => ts.filter((t) => t.target.includes('(images/s')).length;
  assert.equal(speed(d.targets), 2 * speed(doc.targets));
  assert.equal(speed(doc.targets), 2 + doc.sample.length);
  assert.equal(d.targets.length - speed(d.targets), doc.targets.length - speed(doc.targets));
});

test('the PyTorch command line asks for the autocast rows only when given precisions', () => {
  const base = {
    suites: ['train', 'cpu'],
    quick: false,
    steps: 3,
    noGradIters: 5,
    withGradIters: 7,
    sampleBudget: { S: 20 },
  };
  const plain = torchRefArgs(base);
  assert.equal(plain.includes('--precision'), false);
  assert.deepEqual(plain.slice(0, 3), ['--json', '--suite', 'train']);
  const both = torchRefArgs({ ...base, precisions: ['fp32', 'fp16'] });
  assert.deepEqual(both.slice(-2), ['--precision', 'fp32,fp16']);
  assert.deepEqual(both.slice(0, -2), plain);
});
