// The training generator's timesteps and noise for the next step (header step 2 of loop.ts), drawn on
// a worker thread while this thread records the current step.
//
// The worker runs the same function (drawTimestepsAndNoise) from a copy of the generator's state, so
// its numbers and the state it ends in are those of drawing here; the loop takes them only when the
// request was made from the state its generator is in now (else, or when the worker failed, it draws
// here). At S/2 and batch 32 the noise is 131,072 normals: ≈ 3–5 ms of the loop's host time per step
// (the loop is host-bound at mixed precision on the GPU machine, results/bench/NOTES.md §10), which
// the worker takes off this thread.
import { Worker } from 'node:worker_threads';
import { Rng, type RngState } from '../util/rng.js';

/** Noise sizes below this many values are drawn here (a worker's start-up is not worth it). */
export const DRAW_AHEAD_MIN_VALUES = 32768;

export interface TimestepsAndNoise {
  /** t ~ U{0..T−1} per sample */
  tIdx: number[];
  /** ε ~ N(0, I), `count` values */
  noise: Float32Array;
}

/** Step 2 of the loop: t per sample, then the noise, from `rng` (advancing it). */
export function drawTimestepsAndNoise(rng: Rng, n: number, count: number, numTimesteps: number): TimestepsAndNoise {
  const tIdx = Array.from({ length: n }, () => rng.int(0, numTimesteps - 1));
  const noise = rng.normals(count);
  return { tIdx, noise };
}

/** What the worker is sent and returns. */
export interface DrawRequest {
  id: number;
  state: RngState;
  n: number;
  count: number;
  numTimesteps: number;
}
export interface DrawReply extends TimestepsAndNoise {
  id: number;
  /** the generator's state after the draws */
  state: RngState;
}

/**
 * The worker: draw-worker.js next to this file when running compiled; from the TypeScript sources
 * (tests, `tsx`), the .ts file through tsx's loader registered in the worker.
 */
function startWorker(): Worker {
  if (import.meta.url.endsWith('.ts')) {
    const url = new URL('./draw-worker.ts', import.meta.url).href;
    return new Worker(
      `import('tsx/esm/api').then((tsx) => { tsx.register(); return import(${JSON.stringify(url)}); });`,
      { eval: true },
    );
  }
  return new Worker(new URL('./draw-worker.js', import.meta.url));
}

function sameRequest(a: Omit<DrawRequest, 'id'>, b: Omit<DrawRequest, 'id'>): boolean {
  return (
    a.n === b.n &&
    a.count === b.count &&
    a.numTimesteps === b.numTimesteps &&
    a.state.spare === b.state.spare &&
    a.state.s.every((v, i) => v === b.state.s[i])
  );
}

/** One request in flight at a time; see the file header. */
export class DrawAhead {
  private worker: Worker | null = null;
  private failed = false;
  private nextId = 1;
  private pending: { req: DrawRequest; reply: Promise<DrawReply> } | null = null;
  private readonly waiting = new Map<number, { resolve: (r: DrawReply) => void; reject: (e: Error) => void }>();

  private ensureWorker(): Worker | null {
    if (this.failed) return null;
    if (!this.worker) {
      const w = startWorker();
      w.on('message', (r: DrawReply) => {
        this.waiting.get(r.id)?.resolve(r);
        this.waiting.delete(r.id);
        // idle again: unref, unless close() holds it until it has exited
        if (this.waiting.size === 0 && this.worker === w) w.unref();
      });
      const fail = (e: Error) => {
        this.failed = true;
        for (const p of this.waiting.values()) p.reject(e);
        this.waiting.clear();
      };
      w.on('error', fail);
      w.on('exit', () => fail(new Error('the draw worker exited')));
      // what keeps the process alive only while a request is in flight (unref after the listeners: a
      // 'message' listener refs it again)
      w.unref();
      this.worker = w;
    }
    return this.worker;
  }

  /** Starts drawing what drawTimestepsAndNoise(rng, …) would draw next (rng is not advanced). */
  request(rng: Rng, n: number, count: number, numTimesteps: number): void {
    this.pending = null;
    const w = this.ensureWorker();
    if (!w) return;
    const req: DrawRequest = { id: this.nextId++, state: rng.state(), n, count, numTimesteps };
    const reply = new Promise<DrawReply>((resolve, reject) => this.waiting.set(req.id, { resolve, reject }));
    reply.catch(() => undefined); // a failure is seen by take(), which then draws here
    w.ref();
    w.postMessage(req);
    this.pending = { req, reply };
  }

  /**
   * The draws of drawTimestepsAndNoise(rng, n, count, numTimesteps) and the state after them, when the
   * request in flight was made from rng's current state with these sizes; else null (draw here).
   */
  async take(
    rng: Rng,
    n: number,
    count: number,
    numTimesteps: number,
  ): Promise<(TimestepsAndNoise & { state: RngState }) | null> {
    const p = this.pending;
    this.pending = null;
    if (!p || !sameRequest(p.req, { state: rng.state(), n, count, numTimesteps })) return null;
    try {
      const r = await p.reply;
      return { tIdx: r.tIdx, noise: r.noise, state: r.state };
    } catch {
      return null;
    }
  }

  async close(): Promise<void> {
    this.pending = null;
    const w = this.worker;
    this.worker = null;
    this.failed = true;
    if (w) {
      w.ref(); // an unref'd worker's exit would not be waited for
      await w.terminate();
    }
  }
}
