// The f16 weight copies of a forward without save at mixed precision (src/backends/webgpu/half-weights.ts):
// when a copy is made and reused, and the environment variables of it and of the f16 activations. The
// kernels themselves run on the H200 only (f16 subgroup matrices): the model's sampling passes with and
// without them gave the same x_0 bit for bit there (results/bench/2026-12-01-webgpu-xl-sample-ab-act16.md).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { act16On, halfWeight, halfWeightsOn, weightOperand } from '../../src/backends/webgpu/half-weights.js';
import type { Plan } from '../../src/backends/webgpu/plan.js';
import type { RawKernels } from '../../src/backends/webgpu/raw.js';
import { UserError } from '../../src/util/errors.js';

/** A plan and kernels that only record what halfWeight asks of them. */
function recorder() {
  const scratch = new Map<string, object>();
  const conversions: Array<{ name: string; count: number; body: string }> = [];
  const p = {
    scratch: (name: string, floats: number) => {
      const key = `${name}:${floats}`;
      if (!scratch.has(key)) scratch.set(key, { name, floats });
      return scratch.get(key)!;
    },
    elements: (name: string, _args: unknown, count: number, body: string) => conversions.push({ name, count, body }),
  } as unknown as Plan;
  const rk = { buffer: () => ({}) } as unknown as RawKernels;
  return { p, rk, conversions, scratch };
}

test('halfWeight: null the first time a weight comes in an epoch, converted the second, reused after; a new epoch or another weight starts over', async () => {
  await tf.setBackend('cpu');
  const { p, rk, conversions, scratch } = recorder();
  const w = tf.zeros([6, 5]); // 30 values: 15 floats of f16
  const other = tf.zeros([6, 5]);
  const epoch1 = {};
  const epoch2 = {};
  try {
    assert.equal(halfWeight(rk, p, 'W116', w, epoch1), null);
    assert.equal(conversions.length, 0);
    const second = halfWeight(rk, p, 'W116', w, epoch1);
    assert.ok(second);
    assert.equal(second[0], 'W116');
    assert.equal(second[3], 'f16');
    assert.deepEqual(conversions, [{ name: 'w16.W116', count: 30, body: 'W16[idx] = f16(W[idx]);' }]);
    assert.deepEqual([...scratch.keys()], ['w16.W116:15']);
    // later calls read the copy without converting again
    assert.equal(halfWeight(rk, p, 'W116', w, epoch1)?.[1], second[1]);
    assert.equal(conversions.length, 1);
    // a new forward (epoch): the weights may have been written in place since
    assert.equal(halfWeight(rk, p, 'W116', w, epoch2), null);
    assert.ok(halfWeight(rk, p, 'W116', w, epoch2));
    assert.equal(conversions.length, 2);
    // another weight through the same name (the next DiT block): never converted while they alternate
    assert.equal(halfWeight(rk, p, 'W116', other, epoch2), null);
    assert.equal(halfWeight(rk, p, 'W116', w, epoch2), null);
    assert.equal(conversions.length, 2);
    // names are kept apart
    assert.equal(halfWeight(rk, p, 'W216', w, epoch2), null);
  } finally {
    tf.dispose([w, other]);
  }
});

test('weightOperand: the f32 weight bound by its name until a copy exists (or with copies off), then the copy read through f32()', async () => {
  await tf.setBackend('cpu');
  const { p, rk, conversions } = recorder();
  const w = tf.zeros([4, 4]);
  const epoch = {};
  try {
    const off = weightOperand(rk, p, 'W1', 'W1H', w, epoch, false);
    assert.equal(off.arg[0], 'W1');
    assert.equal(off.at('j * 4u + k'), 'W1[j * 4u + k]');
    assert.equal(weightOperand(rk, p, 'W1', 'W1H', w, epoch, true).arg[0], 'W1'); // first sight: no copy yet
    const copy = weightOperand(rk, p, 'W1', 'W1H', w, epoch, true);
    assert.deepEqual([copy.arg[0], copy.arg[3]], ['W1H', 'f16']);
    assert.equal(copy.at('j * 4u + k'), 'f32(W1H[j * 4u + k])');
    assert.equal(conversions.length, 1);
  } finally {
    w.dispose();
  }
});

test('FPDM_MIXED_WEIGHTS16 and FPDM_MIXED_ACT16: on unless 0, anything else than 0 or 1 refused', () => {
  const cases: Array<[string, () => boolean]> = [
    ['FPDM_MIXED_WEIGHTS16', halfWeightsOn],
    ['FPDM_MIXED_ACT16', act16On],
  ];
  for (const [name, on] of cases) {
    const prev = process.env[name];
    try {
      delete process.env[name];
      assert.equal(on(), true);
      process.env[name] = '0';
      assert.equal(on(), false);
      process.env[name] = '1';
      assert.equal(on(), true);
      process.env[name] = 'on';
      assert.throws(on, (e: Error) => e instanceof UserError && e.message.includes(`${name}=on`));
    } finally {
      if (prev === undefined) delete process.env[name];
      else process.env[name] = prev;
    }
  }
});
