import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from '../cli.js';

// The training script is deterministic: the same seed gives byte-identical weights (tiny run).
function train(out: string, seed: string): { code: number; stderr: string } {
  const r = spawnSync(
    process.execPath,
    [
      '--import',
      'tsx',
      join(ROOT, 'scripts', 'train-mnist-classifier.ts'),
      '--epochs',
      '1',
      '--max-train',
      '128',
      '--seed',
      seed,
      '--out',
      out,
    ],
    {
      cwd: ROOT,
      encoding: 'utf8',
    },
  );
  return { code: r.status ?? -1, stderr: r.stderr };
}

test('train-mnist-classifier: same seed → identical weights, another seed → different ones; JSON record written', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fpdm-mnist-train-'));
  try {
    const paths = ['a', 'b', 'c'].map((n) => join(dir, `${n}.safetensors`));
    const runs = [train(paths[0]!, '3'), train(paths[1]!, '3'), train(paths[2]!, '4')];
    for (const r of runs) assert.equal(r.code, 0, r.stderr);
    const bytes = paths.map((p) => readFileSync(p));
    assert.ok(bytes[0]!.equals(bytes[1]!), 'same seed gave different weights');
    assert.ok(!bytes[0]!.equals(bytes[2]!), 'another seed gave the same weights');
    const rec = JSON.parse(readFileSync(join(dir, 'a.json'), 'utf8')) as {
      seed: number;
      trainSize: number;
      heldoutAccuracy: number;
      command: string;
    };
    assert.equal(rec.seed, 3);
    assert.equal(rec.trainSize, 128);
    assert.ok(rec.heldoutAccuracy > 0.1 && rec.heldoutAccuracy <= 1);
    assert.match(rec.command, /train-mnist-classifier/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
