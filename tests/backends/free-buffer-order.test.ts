// orderFreeBuffers (src/backends/webgpu/raw.ts): TF.js's buffer pool, with its free lists kept in id
// order, hands a sequence of acquires and releases the same buffers every time it is repeated, whatever
// order the buffers were released in before. A stand-in for TF.js's BufferManager (its free lists and
// its last-in-first-out acquire), so this runs on every backend.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { orderFreeBuffers } from '../../src/backends/webgpu/raw.js';
import { BufferIds, type BufferManagerLike, type GBuffer } from '../../src/backends/webgpu/types.js';

/** TF.js 4.22's BufferManager, as far as the pool's order goes. */
class Pool implements BufferManagerLike {
  readonly freeBuffers = new Map<string, GBuffer[]>();
  private made = 0;
  constructor(private readonly ids: BufferIds) {}

  acquire(size: number): GBuffer {
    const free = this.freeBuffers.get(`${size}_128`);
    if (free && free.length > 0) return free.pop()!;
    const b = { size, usage: 128, name: `b${this.made++}` } as unknown as GBuffer;
    this.ids.of(b); // ids in creation order
    return b;
  }

  releaseBuffer(buffer: GBuffer, reuse = true): void {
    if (!reuse) return;
    const key = `${buffer.size}_${buffer.usage}`;
    if (!this.freeBuffers.has(key)) this.freeBuffers.set(key, []);
    this.freeBuffers.get(key)!.push(buffer);
  }
}

const nameOf = (b: GBuffer) => (b as unknown as { name: string }).name;

test('free buffers are taken lowest id first, whatever order they were released in', () => {
  const ids = new BufferIds();
  const pool = new Pool(ids);
  orderFreeBuffers(pool, ids);
  const bs = Array.from({ length: 6 }, () => pool.acquire(64));
  for (const i of [3, 0, 5, 1, 4, 2]) pool.releaseBuffer(bs[i]!);
  const taken = Array.from({ length: 6 }, () => nameOf(pool.acquire(64)));
  assert.deepEqual(taken, ['b0', 'b1', 'b2', 'b3', 'b4', 'b5']);
  pool.releaseBuffer(bs[0]!, false); // not reused: nothing to order
  assert.equal(pool.freeBuffers.get('64_128')!.length, 0);
});

test('steps that acquire and release in a fixed order cycle through few buffer assignments', () => {
  // a step: 5 tensors of one size, released in an order unlike their acquisition (as a backward frees
  // a forward's intermediates), one of them kept until the next step: its buffer alternates between two,
  // so the assignments repeat every 2 steps (without a kept tensor, every step)
  const step = (pool: Pool, kept: GBuffer | null): { names: string[]; kept: GBuffer } => {
    const t = Array.from({ length: 5 }, () => pool.acquire(256));
    if (kept) pool.releaseBuffer(kept);
    for (const i of [2, 0, 4, 1]) pool.releaseBuffer(t[i]!);
    return { names: t.map(nameOf), kept: t[3]! };
  };
  const run = (ordered: boolean): string[] => {
    const ids = new BufferIds();
    const pool = new Pool(ids);
    if (ordered) orderFreeBuffers(pool, ids);
    const out: string[] = [];
    let kept: GBuffer | null = null;
    for (let s = 0; s < 8; s++) {
      const r = step(pool, kept);
      out.push(r.names.join());
      kept = r.kept;
    }
    return out;
  };
  const ordered = run(true);
  for (let s = 3; s < ordered.length; s++) assert.equal(ordered[s], ordered[s - 2], `step ${s + 1}`);
  assert.equal(new Set(ordered.slice(1)).size, 2);
  // the pool's own order permutes the buffers from step to step (what made the bind groups miss)
  assert.ok(new Set(run(false).slice(1)).size > 2);
});
