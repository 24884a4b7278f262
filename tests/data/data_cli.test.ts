import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readImage } from '../../src/data/images.js';
import { runCli } from '../cli.js';

test('fpdm-exp data info mnist:heldout --json gives size, per-class counts and the fingerprint', () => {
  const r = runCli(['data', 'info', 'mnist:heldout', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const info = JSON.parse(r.stdout) as { size: number; numClasses: number; classCounts: number[]; fingerprint: string };
  assert.equal(info.numClasses, 10);
  assert.equal(
    info.classCounts.reduce((a, b) => a + b, 0),
    info.size,
  );
  assert.match(info.fingerprint, /^[0-9a-f]{64}$/);
});

test('fpdm-exp data grid writes an 8×8 grid; a bad split or a missing folder exits 2', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'fpdm-data-cli-'));
  try {
    const out = join(dir, 'grid.png');
    const r = runCli(['data', 'grid', 'synthetic', '--out', out, '--image-size', '8', '--seed', '1']);
    assert.equal(r.code, 0, r.stderr);
    const img = await readImage(out);
    assert.deepEqual(img.shape, [3, 8 * 10 + 2, 8 * 10 + 2]);
    assert.equal(runCli(['data', 'info', 'mnist:test']).code, 2);
    const missing = runCli(['data', 'info', join(dir, 'no-such-folder')]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /does not exist/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
