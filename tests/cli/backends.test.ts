import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runCli } from '../cli.js';

test('backends --json reports wasm and cpu usable, every unusable one with a reason', () => {
  const r = runCli(['backends', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const infos = JSON.parse(r.stdout) as { name: string; usable: boolean; reason?: string; version?: string }[];
  assert.deepEqual(
    infos.map((b) => b.name),
    ['wasm', 'cpu', 'webgpu', 'tensorflow'],
  );
  for (const name of ['wasm', 'cpu']) assert.equal(infos.find((b) => b.name === name)?.usable, true, name);
  for (const b of infos) if (!b.usable) assert.ok(b.reason && b.reason.length > 10, `${b.name} has a reason`);
});

test('an unknown backend and an unknown command exit 2 with one clear message', () => {
  const a = runCli(['--backend', 'tpu', 'backends']);
  assert.equal(a.code, 2);
  assert.match(a.stderr, /'tpu' is not a backend/);
  const b = runCli(['frobnicate']);
  assert.equal(b.code, 2);
  assert.match(b.stderr, /unknown command/);
});

test('--version prints the version and a commit', () => {
  const r = runCli(['--version']);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /^\d+\.\d+\.\d+ \(commit [0-9a-f]{40}(-dirty)?\)/);
});
