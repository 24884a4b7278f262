import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../../src/util/rng.js';

test('same seed gives the same stream, another seed another one', () => {
  const a = new Rng(7).normals(100);
  const b = new Rng(7).normals(100);
  const c = new Rng(8).normals(100);
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, c);
});

test('state round trip continues the stream exactly', () => {
  const r = new Rng('run/42');
  r.normals(13);
  const s = JSON.parse(JSON.stringify(r.state()));
  const expected = r.normals(50);
  assert.deepEqual(Rng.fromState(s).normals(50), expected);
});

test('normals(n) redraws u = 0 as normal() does (a state whose next two draws are 0)', () => {
  // xoshiro128** outputs 0 when s1 = 0, and its next s1 is s0 ^ s1 ^ s2: 0 again when s0 = s2
  const state = { s: [0x12345678, 0, 0x12345678, 0x9abcdef0] as [number, number, number, number], spare: null };
  const probe = Rng.fromState(state);
  assert.equal(probe.uniform(), 0, 'the first uniform of this state is 0');
  for (const n of [1, 2, 5]) {
    const a = Rng.fromState(state);
    const b = Rng.fromState(state);
    const fast = a.normals(n);
    const slow = Float32Array.from({ length: n }, () => b.normal());
    assert.deepEqual(fast, slow, `n ${n}`);
    assert.ok(fast.every(Number.isFinite));
    assert.deepEqual(a.state(), b.state(), `state after, n ${n}`);
  }
});

test('normals have mean ~0 and variance ~1; ints cover the closed range', () => {
  const x = new Rng(1).normals(200000);
  const mean = x.reduce((s, v) => s + v, 0) / x.length;
  const variance = x.reduce((s, v) => s + (v - mean) ** 2, 0) / x.length;
  assert.ok(Math.abs(mean) < 0.01, `mean ${mean}`);
  assert.ok(Math.abs(variance - 1) < 0.01, `variance ${variance}`);
  const r = new Rng(3);
  const seen = new Set<number>();
  for (let i = 0; i < 1000; i++) seen.add(r.int(0, 10));
  assert.deepEqual(
    [...seen].sort((p, q) => p - q),
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
  );
});

test('normals(n) gives the numbers of n calls of normal(), bitwise, and leaves the same state', () => {
  for (const [seed, pre, n] of [
    [1, 0, 1000],
    [2, 1, 999], // starts on a cached spare
    [3, 3, 1], // odd count: leaves a spare
    [4, 0, 0],
  ] as const) {
    const a = new Rng(seed);
    const b = new Rng(seed);
    for (let k = 0; k < pre; k++) assert.equal(a.normal(), b.normal());
    const fast = a.normals(n);
    const slow = Float32Array.from({ length: n }, () => b.normal());
    assert.deepEqual(fast, slow, `seed ${seed}`);
    assert.deepEqual(a.state(), b.state(), `state after, seed ${seed}`);
    assert.equal(a.normal(), b.normal());
  }
});
