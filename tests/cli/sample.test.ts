import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readSafetensors } from '../../src/io/safetensors.js';
import { runCli } from '../cli.js';

// one tiny FPDM checkpoint (trunk depth 4, 1 pre + 1 post) shared by the tests below
const ckpt = mkdtempSync(join(tmpdir(), 'sample-ckpt-'));
const trained = runCli([
  '--backend',
  'cpu',
  'train',
  '--preset',
  'DiT-S/4',
  '--hidden-size',
  '16',
  '--heads',
  '2',
  '--depth',
  '4',
  '--fpdm',
  '--sjfb-no-grad',
  '0:1',
  '--sjfb-with-grad',
  '1:2',
  '--data',
  'synthetic',
  '--image-size',
  '8',
  '--channels',
  '1',
  '--steps',
  '3',
  '--batch-size',
  '4',
  '--lr',
  '1e-3',
  '--seed',
  '1',
  '--out',
  ckpt,
]);

function sample(extra: string[]): {
  code: number;
  stderr: string;
  account: Record<string, unknown>;
  samples: Float32Array;
} {
  const dir = mkdtempSync(join(tmpdir(), 'sample-out-'));
  const r = runCli([
    '--backend',
    'cpu',
    'sample',
    '--ckpt',
    ckpt,
    '--samples',
    '4',
    '--out',
    join(dir, 'grid.png'),
    '--save',
    dir,
    '--json',
    ...extra,
  ]);
  if (r.code !== 0) return { code: r.code, stderr: r.stderr, account: {}, samples: new Float32Array(0) };
  const st = readSafetensors(join(dir, 'samples.safetensors')).tensors.get('samples')!;
  assert.ok(readFileSync(join(dir, 'grid.png')).subarray(1, 4).toString() === 'PNG');
  return {
    code: 0,
    stderr: r.stderr,
    account: (JSON.parse(r.stdout) as { account: Record<string, unknown> }).account,
    samples: st.data as Float32Array,
  };
}

test('sample at a budget: accounting printed, same seed same samples, other seed other samples', () => {
  assert.equal(trained.code, 0, trained.stderr);
  const a = sample(['--budget', '3', '--seed', '4']);
  assert.equal(a.code, 0, a.stderr);
  assert.equal(a.account.blockEvaluations, 12); // depth 4 × K 3
  assert.equal(a.account.steps, 3);
  assert.equal((a.account.residualPerStep as number[]).length, 3);
  assert.match(a.stderr, /spent: 12\.0 block evaluations per image \(3\.00 DiT-step equivalents of a budget of 3\)/);
  assert.match(a.stderr, /fixed-point residual per step: /);
  const b = sample(['--budget', '3', '--seed', '4']);
  assert.deepEqual(a.samples, b.samples);
  const c = sample(['--budget', '3', '--seed', '5']);
  assert.ok(a.samples.some((v, i) => v !== c.samples[i]));
});

test('sample options: allocation, reuse, ddim, cfg; impossible budgets are usage errors', () => {
  assert.equal(trained.code, 0, trained.stderr);
  const r = sample([
    '--budget',
    '3',
    '--steps',
    '4',
    '--allocation',
    'decreasing',
    '--reuse',
    '--sampler',
    'ddim',
    '--eta',
    '0',
    '--cfg',
    '2',
  ]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.account.reuse, true);
  assert.equal(r.account.cfgScale, 2);
  assert.equal(r.account.blockEvaluations, 12);
  const bad = sample(['--budget', '3', '--steps', '5']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /cannot be spent exactly/);
  const none = runCli([
    '--backend',
    'cpu',
    'sample',
    '--ckpt',
    mkdtempSync(join(tmpdir(), 'empty-')),
    '--budget',
    '3',
    '--out',
    join(tmpdir(), 'x.png'),
  ]);
  assert.equal(none.code, 2);
  assert.match(none.stderr, /holds no checkpoint/);
});
