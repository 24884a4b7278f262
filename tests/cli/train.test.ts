import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ROOT, runCli } from '../cli.js';

const ENTRY = resolve(ROOT, 'src', 'cli', 'run.ts');
const STEPS = 40;

function trainArgs(out: string, extra: string[] = []): string[] {
  return [
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
    '2',
    '--fpdm',
    '--sjfb-no-grad',
    '0:2',
    '--sjfb-with-grad',
    '1:2',
    '--data',
    'synthetic',
    '--image-size',
    '8',
    '--channels',
    '1',
    '--steps',
    String(STEPS),
    '--batch-size',
    '4',
    '--lr',
    '1e-3',
    '--ema',
    '0.9',
    '--seed',
    '3',
    '--checkpoint-every',
    '4',
    '--out',
    out,
    ...extra,
  ];
}

function sidecar(dir: string): { step: number; sha256: string; weights: string; status: string } | null {
  const p = join(dir, 'checkpoint.json');
  if (!existsSync(p)) return null;
  try {
    return JSON.parse(readFileSync(p, 'utf8'));
  } catch {
    return null; // never happens with atomic writes; tolerate a read racing nothing
  }
}

test('train killed with SIGKILL mid-run and re-run gives bitwise the weights of an uninterrupted run', async () => {
  const killed = mkdtempSync(join(tmpdir(), 'kill-'));
  const child = spawn(process.execPath, ['--import', 'tsx', ENTRY, ...trainArgs(killed)], {
    cwd: ROOT,
    stdio: 'ignore',
  });
  let stepAtKill = -1;
  await new Promise<void>((done, fail) => {
    const timer = setInterval(() => {
      const s = sidecar(killed);
      if (s && s.step >= 8) {
        stepAtKill = s.step;
        child.kill('SIGKILL');
        clearInterval(timer);
      }
    }, 50);
    child.on('exit', () => {
      clearInterval(timer);
      done();
    });
    child.on('error', fail);
  });
  assert.ok(
    stepAtKill >= 8 && stepAtKill < STEPS,
    `killed after a checkpoint and before the end (checkpoint step ${stepAtKill})`,
  );
  const resumed = runCli(trainArgs(killed));
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.match(resumed.stderr, /resuming .* from step \d+ of 40/);
  const whole = mkdtempSync(join(tmpdir(), 'whole-'));
  const r = runCli(trainArgs(whole));
  assert.equal(r.code, 0, r.stderr);
  const a = sidecar(killed)!;
  const b = sidecar(whole)!;
  assert.equal(a.step, STEPS);
  assert.equal(a.status, 'completed');
  assert.equal(a.sha256, b.sha256);
  assert.ok(
    readFileSync(join(killed, a.weights)).equals(readFileSync(join(whole, b.weights))),
    'weights, EMA and optimizer moments are bitwise equal',
  );
});

test('an absurd learning rate stops with diverged and the step; bad flags are usage errors', () => {
  const out = mkdtempSync(join(tmpdir(), 'div-'));
  const r = runCli(trainArgs(out, ['--lr', '1e30']).map((v, i, a) => (a[i - 1] === '--steps' ? '30' : v)));
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /training diverged: the loss at step \d+ is not finite/);
  assert.equal(sidecar(out)!.status, 'diverged');
  const bad = runCli(trainArgs(mkdtempSync(join(tmpdir(), 'bad-')), ['--sjfb-no-grad', '5:2']));
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--sjfb-no-grad must be MIN:MAX/);
  const unknown = runCli([
    '--backend',
    'cpu',
    'train',
    '--preset',
    'DiT-Q/2',
    '--data',
    'synthetic',
    '--steps',
    '1',
    '--batch-size',
    '1',
    '--out',
    mkdtempSync(join(tmpdir(), 'bad-')),
  ]);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /preset 'DiT-Q\/2' does not exist/);
});

test('--precision: mixed on a backend without f16 tensor cores is refused naming why, an unknown value is a usage error', () => {
  const out = mkdtempSync(join(tmpdir(), 'prec-'));
  const cpu = runCli(['--precision', 'mixed', ...trainArgs(out)]);
  assert.equal(cpu.code, 2, cpu.stderr);
  assert.match(cpu.stderr, /--precision mixed runs on the webgpu backend only/);
  assert.ok(!existsSync(join(out, 'checkpoint.json')), 'nothing trained');
  const bad = runCli(['--precision', 'bf16', ...trainArgs(out)]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--precision: 'bf16' is not a precision; choose one of fp32, mixed/);
});
