// Wall time and throughput of a repeated region with warm-up excluded. The first `warmup` calls
// (kernel compilation, weight upload, JIT) are run but not timed; then `repeats` calls are timed one
// by one with performance.now(). Throughput = items per call / median seconds per call. For backends
// that run asynchronously (webgpu) the measured function must await its result (e.g. `await t.data()`),
// otherwise only the dispatch is timed.
export interface TimingOptions {
  warmup?: number;
  repeats?: number;
  /** items processed per call (images, samples) for the throughput */
  itemsPerCall?: number;
}

export interface TimingResult {
  /** seconds per timed call, in call order */
  seconds: number[];
  medianSeconds: number;
  meanSeconds: number;
  minSeconds: number;
  /** total wall seconds of the timed calls (warm-up excluded) */
  totalSeconds: number;
  /** items per second from the median call (itemsPerCall / medianSeconds) */
  itemsPerSecond: number;
  warmup: number;
  repeats: number;
}

export function summarizeTimes(seconds: number[], itemsPerCall = 1, warmup = 0): TimingResult {
  if (seconds.length === 0) throw new Error('summarizeTimes: no timed calls');
  const sorted = [...seconds].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const median = sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  const total = seconds.reduce((a, b) => a + b, 0);
  return {
    seconds,
    medianSeconds: median,
    meanSeconds: total / seconds.length,
    minSeconds: sorted[0]!,
    totalSeconds: total,
    itemsPerSecond: itemsPerCall / median,
    warmup,
    repeats: seconds.length,
  };
}

/** Times `fn` (sync or async) `repeats` times after `warmup` untimed calls. */
export async function timeIt(fn: () => unknown, opts: TimingOptions = {}): Promise<TimingResult> {
  const warmup = opts.warmup ?? 1;
  const repeats = opts.repeats ?? 3;
  if (!Number.isInteger(repeats) || repeats < 1) throw new Error(`timeIt: repeats must be >= 1, got ${repeats}`);
  for (let i = 0; i < warmup; i++) await fn();
  const seconds: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const t0 = performance.now();
    await fn();
    seconds.push((performance.now() - t0) / 1000);
  }
  return summarizeTimes(seconds, opts.itemsPerCall ?? 1, warmup);
}
