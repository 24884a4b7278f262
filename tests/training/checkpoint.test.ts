import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { f32, toFloat32, type TensorMap } from '../../src/io/tensor.js';
import {
  readCheckpoint,
  readCheckpointMeta,
  writeCheckpoint,
  tensorsWithPrefix,
  SIDECAR,
  type CheckpointMeta,
} from '../../src/training/checkpoint.js';
import { UserError } from '../../src/util/errors.js';
import { Rng } from '../../src/util/rng.js';

function meta(step: number): Omit<CheckpointMeta, 'weights' | 'sha256' | 'format'> {
  return {
    step,
    config: { a: 1 },
    rng: { train: new Rng(1).state(), data: { pos: step } },
    optimizer: { stepCount: step },
    history: [],
    runKey: null,
    toolVersion: '0',
    gitCommit: null,
    backend: { name: 'cpu' },
    status: 'running',
    divergedAt: null,
    createdAt: new Date(0).toISOString(),
  };
}

function tensors(v: number): TensorMap {
  return new Map([
    ['model.w', f32([2], [v, v + 0.5])],
    ['ema.w', f32([2], [v / 3, 1])],
    ['opt.m.w', f32([2], [1e-9, -v])],
    ['opt.v.w', f32([2], [7, 8])],
  ]);
}

test('checkpoint round trip, prefixes, and only the latest weights kept', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ckpt-'));
  assert.equal(readCheckpoint(dir), null);
  writeCheckpoint(dir, tensors(1), meta(10));
  writeCheckpoint(dir, tensors(2), meta(20));
  const files = readdirSync(dir).sort();
  assert.deepEqual(files, [SIDECAR, 'ckpt-00000020.safetensors']);
  const back = readCheckpoint(dir)!;
  assert.equal(back.meta.step, 20);
  assert.deepEqual((back.meta.rng.data as { pos: number }).pos, 20);
  assert.deepEqual(Array.from(toFloat32(tensorsWithPrefix(back.tensors, 'model').get('w')!)), [2, 2.5]);
  assert.deepEqual([...tensorsWithPrefix(back.tensors, 'opt.m').keys()], ['w']);
});

test('a crash between writing weights and sidecar leaves the previous checkpoint readable', () => {
  // the kill happened while ckpt 20 was being written: its temporary file exists, the sidecar still names ckpt 10
  const olddir = mkdtempSync(join(tmpdir(), 'ckpt-'));
  writeCheckpoint(olddir, tensors(1), meta(10));
  writeFileSync(join(olddir, '.ckpt-00000020.safetensors.tmp-999'), 'partial');
  const back = readCheckpoint(olddir)!;
  assert.equal(back.meta.step, 10);
  assert.deepEqual(Array.from(toFloat32(back.tensors.get('model.w')!)), [1, 1.5]);
  // the next successful write removes the partial file
  writeCheckpoint(olddir, tensors(3), meta(30));
  assert.ok(!existsSync(join(olddir, '.ckpt-00000020.safetensors.tmp-999')));
});

test('corrupt weights are detected by the recorded hash', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ckpt-'));
  const m = writeCheckpoint(dir, tensors(1), meta(10));
  const p = join(dir, m.weights);
  const bytes = readFileSync(p);
  bytes[bytes.length - 1] ^= 0xff;
  writeFileSync(p, bytes);
  assert.throws(
    () => readCheckpoint(dir),
    (e: unknown) => e instanceof UserError && /corrupt/.test(e.message),
  );
  writeFileSync(join(dir, SIDECAR), '{"format": ');
  assert.throws(
    () => readCheckpointMeta(dir),
    (e: unknown) => e instanceof UserError && /not valid JSON/.test(e.message),
  );
});
