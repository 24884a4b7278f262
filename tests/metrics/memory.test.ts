import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { backendPool, measureMemory } from '../../src/metrics/memory.js';
import { summarizeTimes, timeIt } from '../../src/metrics/timing.js';
import { TEST_BACKENDS, useBackend } from '../helpers.js';

for (const backend of TEST_BACKENDS) {
  test(`peak tensor bytes of a region on ${backend}: a temporary 1000×1000 float32 is seen by 'profile', missed by 'sample'`, async () => {
    await useBackend(backend);
    const keep = tf.zeros([10]); // alive before the region: counted in absolute, not in region bytes
    const { result, memory } = await measureMemory(() => tf.tidy(() => tf.ones([1000, 1000]).sum()));
    assert.equal(memory.method, 'profile');
    assert.equal(memory.peakTensorBytes - memory.startTensorBytes, memory.peakRegionBytes);
    assert.ok(
      memory.peakRegionBytes >= 4_000_000 && memory.peakRegionBytes < 4_100_000,
      String(memory.peakRegionBytes),
    );
    assert.equal(memory.endTensorBytes - memory.startTensorBytes, 4, 'only the scalar result stays');
    assert.ok(memory.startTensorBytes >= 40);
    result.dispose();
    const s = await measureMemory((probe) => {
      const r = tf.tidy(() => tf.ones([1000, 1000]).sum());
      probe.sample();
      return r;
    }, 'sample');
    assert.equal(s.memory.peakRegionBytes, 4, 'sampling between kernels misses the transient');
    s.result.dispose();
    // a tensor made without a kernel (as the direct-dispatch kernels make their outputs) and disposed
    // inside the region: its bytes are in the peak too
    const made = await measureMemory(() => {
      tf.tensor(new Float32Array(500_000)).dispose();
      return null;
    });
    assert.ok(
      made.memory.peakRegionBytes >= 2_000_000,
      `peak ${made.memory.peakRegionBytes} misses a tensor made without a kernel`,
    );
    keep.dispose();
    if (backend === 'wasm') {
      assert.equal(memory.backendPoolKind, 'wasm-linear-memory');
      assert.ok(backendPool()!.bytes >= 4_000_000);
    } else if (backend === 'webgpu') {
      // the GPU buffers the backend holds, freed ones pooled for reuse: at least the 1000×1000 one
      assert.equal(memory.backendPoolKind, 'webgpu-allocated');
      assert.ok(memory.backendPoolBytes! >= 4_000_000, String(memory.backendPoolBytes));
    } else {
      assert.equal(memory.backendPoolBytes, undefined);
    }
  });
}

test('timing excludes warm-up calls and reports the median throughput', async () => {
  let calls = 0;
  const r = await timeIt(
    () => {
      calls++;
    },
    { warmup: 2, repeats: 5, itemsPerCall: 8 },
  );
  assert.equal(calls, 7);
  assert.equal(r.seconds.length, 5);
  assert.equal(r.warmup, 2);
  const s = summarizeTimes([0.5, 0.1, 0.2, 0.4], 10);
  assert.equal(s.medianSeconds, (0.2 + 0.4) / 2);
  assert.equal(s.itemsPerSecond, 10 / ((0.2 + 0.4) / 2));
  assert.equal(s.minSeconds, 0.1);
  assert.ok(Math.abs(s.totalSeconds - 1.2) < 1e-12);
});
