// `fpdm-exp fid` on .npz statistics and feature files (no Inception weights needed), --save-stats,
// and exit 2 on bad input.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readSafetensors, writeSafetensors } from '../../src/io/safetensors.js';
import { f64, toFloat64 } from '../../src/io/tensor.js';
import { readNpz } from '../../src/io/npy.js';
import { writeStatsNpz } from '../../src/metrics/stats_io.js';
import { runCli } from '../cli.js';
import { fixture } from '../helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'fpdm-cli-fid-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));
const t = readSafetensors(fixture('metrics.safetensors')).tensors;
const golden = JSON.parse(readFileSync(fixture('metrics.json'), 'utf8')) as Record<string, number>;
const env = { ...process.env, XDG_CACHE_HOME: join(dir, 'cache') };

const aNpz = join(dir, 'a.npz');
const aFeat = join(dir, 'a.safetensors');
const bFeat = join(dir, 'b.safetensors');
writeStatsNpz(aNpz, { mu: toFloat64(t.get('mu_a')!), sigma: toFloat64(t.get('sigma_a')!), dim: 32 });
writeSafetensors(aFeat, { features: t.get('features_a')! });
writeSafetensors(bFeat, { features: t.get('features_b')! });

test('fid between .npz stats and a features file, and between two feature files, matches FID a/b', () => {
  for (const [a, b] of [
    [aNpz, bFeat],
    [aFeat, bFeat],
  ]) {
    const r = runCli(['fid', a!, b!, '--json'], { env });
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout) as {
      value: number;
      metric: string;
      mode: string;
      inputs: { kind: string; n?: number }[];
    };
    assert.equal(j.metric, 'fid');
    assert.equal(j.mode, 'pytorch-fid');
    assert.ok(Math.abs(j.value - golden.fid_a_b!) / golden.fid_a_b! <= 1e-6, `${j.value}`);
    assert.equal(j.inputs[1]!.kind, 'features');
    assert.equal(j.inputs[1]!.n, 650);
  }
  const text = runCli(['fid', aNpz, bFeat], { env });
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /^FID: 11\.68483/);
});

test("--save-stats writes A's mu/sigma as a float64 .npz, with or without B", () => {
  const out = join(dir, 'saved.npz');
  const r = runCli(['fid', aFeat, '--save-stats', out], { env });
  assert.equal(r.code, 0, r.stderr);
  const z = readNpz(out);
  assert.deepEqual([...z.keys()].sort(), ['mu', 'sigma']);
  assert.equal(z.get('sigma')!.dtype, 'F64');
  assert.deepEqual(z.get('sigma')!.shape, [32, 32]);
  const ref = toFloat64(t.get('sigma_a')!);
  const got = toFloat64(z.get('sigma')!);
  assert.ok(got.every((v, i) => Math.abs(v - ref[i]!) < 1e-12));
  const r2 = runCli(['fid', out, bFeat, '--json'], { env });
  assert.ok(Math.abs((JSON.parse(r2.stdout) as { value: number }).value - golden.fid_a_b!) / golden.fid_a_b! <= 1e-6);
});

test('bad input exits 2 with one clear message', () => {
  const cases: [string[], RegExp][] = [
    [['fid', join(dir, 'nope'), bFeat], /does not exist/],
    [['fid', aFeat], /needs two inputs/],
    [['fid', aFeat, bFeat, '--mode', 'clean'], /not a preprocessing mode/],
    [['fid', aFeat, bFeat, '--batch', '0'], /--batch: '0' is not a positive integer/],
  ];
  const small = join(dir, 'small.safetensors');
  writeSafetensors(small, {
    features: f64(
      [3, 4],
      new Float64Array(12).map((_, i) => i % 5),
    ),
  });
  cases.push([['fid', aFeat, small], /32-d statistics.*4-d/]);
  const noFeat = join(dir, 'other.safetensors');
  writeSafetensors(noFeat, { x: f64([1], [0]) });
  cases.push([['fid', aFeat, noFeat], /neither 'features'/]);
  // images without weights in an empty cache: says how to get the weights
  const imgs = join(dir, 'imgs.safetensors');
  writeSafetensors(imgs, { images_uint8_nchw: { dtype: 'U8', shape: [1, 3, 2, 2], data: new Uint8Array(12) } });
  cases.push([['fid', imgs, bFeat], /weights fetch inception/]);
  for (const [args, re] of cases) {
    const r = runCli(args, { env });
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, re, args.join(' '));
    assert.doesNotMatch(r.stderr, /internal error|at .*\.ts:\d+/);
  }
});
