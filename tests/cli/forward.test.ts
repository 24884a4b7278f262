// `fpdm-exp forward` against the golden fixtures, through the CLI as a user runs it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readSafetensors, writeSafetensors } from '../../src/io/safetensors.js';
import { f32, getTensor, toFloat64 } from '../../src/io/tensor.js';
import { runCli } from '../cli.js';
import { run } from '../../src/cli/commands/forward.js';
import { UserError } from '../../src/util/errors.js';
import { fixture, maxAbsDiff } from '../helpers.js';
import { tinyKwargs } from '../models/helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'fpdm-forward-'));
function writeConfig(name: string, obj: Record<string, unknown>): string {
  const p = join(dir, name);
  writeFileSync(p, JSON.stringify(obj));
  return p;
}

test('forward: dit_tiny from the legacy .pt checkpoint reproduces `out` (wasm)', () => {
  const out = join(dir, 'dit.safetensors');
  const r = runCli([
    '--backend',
    'wasm',
    'forward',
    '--ckpt',
    fixture('dit_tiny.legacy.pt'),
    '--config',
    writeConfig('dit.json', tinyKwargs('dit_tiny')),
    '--inputs',
    fixture('dit_tiny.io.safetensors'),
    '--out',
    out,
    '--json',
  ]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout).tensors, ['out']);
  const got = toFloat64(getTensor(readSafetensors(out).tensors, 'out'));
  const err = maxAbsDiff(got, toFloat64(getTensor(readSafetensors(fixture('dit_tiny.io.safetensors')).tensors, 'out')));
  console.log(`CLI forward dit_tiny max abs err ${err.toExponential(2)}`);
  assert.ok(err <= 1e-4);
});

test('forward --iters 2 and --reuse on fpdm_tiny (cpu) reproduce out_iters2 and reuse_out1/2', () => {
  const io = readSafetensors(fixture('fpdm_tiny.io.safetensors')).tensors;
  const out = join(dir, 'fpdm.safetensors');
  const a = runCli([
    '--backend',
    'cpu',
    'forward',
    '--ckpt',
    fixture('fpdm_tiny.pt'),
    '--config',
    writeConfig('fpdm.json', tinyKwargs('fpdm_tiny')),
    '--inputs',
    fixture('fpdm_tiny.io.safetensors'),
    '--out',
    out,
    '--iters',
    '2',
  ]);
  assert.equal(a.code, 0, a.stderr);
  assert.ok(
    maxAbsDiff(toFloat64(getTensor(readSafetensors(out).tensors, 'out')), toFloat64(getTensor(io, 'out_iters2'))) <=
      1e-4,
  );
  const cfg = writeConfig('fpdm_nopptc.json', {
    ...tinyKwargs('fpdm_tiny'),
    fixed_point_pre_post_timestep_conditioning: false,
  });
  const b = runCli([
    '--backend',
    'cpu',
    'forward',
    '--ckpt',
    fixture('fpdm_tiny.safetensors'),
    '--config',
    cfg,
    '--inputs',
    fixture('fpdm_tiny.io.safetensors'),
    '--out',
    out,
    '--reuse',
    '--json',
  ]);
  assert.equal(b.code, 0, b.stderr);
  const res = readSafetensors(out).tensors;
  for (const k of ['reuse_out1', 'reuse_out2']) {
    const err = maxAbsDiff(toFloat64(getTensor(res, k)), toFloat64(getTensor(io, k)));
    assert.ok(err <= 1e-4, `${k}: ${err}`);
  }
  const summary = JSON.parse(b.stdout) as { solves: { iterations: number; residuals: number[] }[] };
  assert.deepEqual(
    summary.solves.map((s) => s.iterations),
    [4, 4],
  );
});

test('forward: user mistakes exit 2 with one clear message (one through the CLI, the rest in-process)', async () => {
  const base = [
    'forward',
    '--ckpt',
    fixture('dit_tiny.safetensors'),
    '--inputs',
    fixture('dit_tiny.io.safetensors'),
    '--out',
    join(dir, 'x.safetensors'),
  ];
  const unknown = runCli([...base, '--config', writeConfig('bad.json', { ...tinyKwargs('dit_tiny'), hidden_sise: 3 })]);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /unknown key\(s\) 'hidden_sise'/);
  const g = { backend: 'cpu' as const, quiet: true };
  const opts = {
    ckpt: fixture('dit_tiny.safetensors'),
    inputs: fixture('dit_tiny.io.safetensors'),
    out: join(dir, 'x.safetensors'),
  };
  const userError = (re: RegExp) => (e: unknown) => e instanceof UserError && re.test(e.message);
  await assert.rejects(
    run({ ...opts, config: writeConfig('wide.json', { ...tinyKwargs('dit_tiny'), hidden_size: 128 }) }, g),
    userError(/tensor '.*' has shape \[64.*needs \[128/),
  );
  await assert.rejects(
    run({ ...opts, config: writeConfig('dit2.json', tinyKwargs('dit_tiny')), reuse: true }, g),
    userError(/FPDM only/),
  );
  await assert.rejects(
    run({ ...opts, config: writeConfig('dit3.json', tinyKwargs('dit_tiny')), ckpt: join(dir, 'nope.pt') }, g),
    userError(/does not exist/),
  );
  await assert.rejects(
    run(
      { ...opts, config: writeConfig('dit4.json', tinyKwargs('dit_tiny')), inputs: fixture('fpdm_tiny.safetensors') },
      g,
    ),
    userError(/no tensor named 'x'/),
  );
  // an input of the wrong shape is the user's mistake at the boundary, not the model's shape invariant (a bug)
  const wrong = join(dir, 'wrong.safetensors');
  writeSafetensors(wrong, {
    x: f32([2, 3, 8, 8], new Float32Array(2 * 3 * 64)),
    t: f32([2], new Float32Array(2)),
    y: f32([2], new Float32Array(2)),
  });
  await assert.rejects(
    run({ ...opts, config: writeConfig('dit5.json', tinyKwargs('dit_tiny')), inputs: wrong }, g),
    userError(/input 'x' \(NCHW\): has shape \[2, 3, 8, 8\], expected \[\*, 4, 8, 8\]/),
  );
  writeSafetensors(wrong, {
    x: f32([2, 4, 8, 8], new Float32Array(2 * 4 * 64)),
    t: f32([3], new Float32Array(3)),
    y: f32([2], new Float32Array(2)),
  });
  await assert.rejects(
    run({ ...opts, config: writeConfig('dit6.json', tinyKwargs('dit_tiny')), inputs: wrong }, g),
    userError(/timesteps 't': has shape \[3\], expected \[2\]/),
  );
});
