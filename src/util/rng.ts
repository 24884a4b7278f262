// Seeded random numbers on the host, so that results depend only on the seed (not on the backend
// or on TF.js's global RNG) and the generator state can be saved in a checkpoint and restored.
// Generator: xoshiro128** seeded through splitmix32 from a number or a string; normals by Box–Muller.

function splitmix32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x9e3779b9) >>> 0;
    let z = a;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
}

function hashString(s: string): number {
  let h = 2166136261 >>> 0; // FNV-1a
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619) >>> 0;
  return h;
}

export interface RngState {
  s: [number, number, number, number];
  /** a cached second Box–Muller normal, or null */
  spare: number | null;
}

export class Rng {
  private s: Uint32Array;
  private spare: number | null = null;

  /** `seed` may be a number or a string (e.g. `${seed}/sampling/${batch}` for independent streams). */
  constructor(seed: number | string) {
    const sm = splitmix32(typeof seed === 'string' ? hashString(seed) : seed);
    this.s = Uint32Array.from([sm(), sm(), sm(), sm()]);
    if (this.s.every((v) => v === 0)) this.s[0] = 1;
  }

  static fromState(state: RngState): Rng {
    const r = new Rng(0);
    r.s = Uint32Array.from(state.s);
    r.spare = state.spare;
    return r;
  }

  state(): RngState {
    return { s: [this.s[0]!, this.s[1]!, this.s[2]!, this.s[3]!], spare: this.spare };
  }

  /** Puts this generator in `state` (e.g. the state a copy of it reached on another thread). */
  load(state: RngState): void {
    this.s = Uint32Array.from(state.s);
    this.spare = state.spare;
  }

  /** Derives an independent generator (e.g. one per data loader) without disturbing this one's stream. */
  fork(label: string): Rng {
    return new Rng(`${this.s.join(',')}/${label}`);
  }

  /** next raw 32-bit value (xoshiro128**) */
  nextU32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1]!, 5), 7), 9) >>> 0;
    const t = (s[1]! << 9) >>> 0;
    s[2]! ^= s[0]!;
    s[3]! ^= s[1]!;
    s[1]! ^= s[2]!;
    s[0]! ^= s[3]!;
    s[2]! ^= t;
    s[3] = rotl(s[3]!, 11);
    return result;
  }

  /** uniform in [0, 1) with 53 random bits */
  uniform(): number {
    const hi = this.nextU32() >>> 5;
    const lo = this.nextU32() >>> 6;
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** integer uniform in [lo, hi] inclusive */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.uniform() * (hi - lo + 1));
  }

  /** one standard normal */
  normal(): number {
    if (this.spare !== null) {
      const v = this.spare;
      this.spare = null;
      return v;
    }
    let u = 0;
    while (u === 0) u = this.uniform();
    const v = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }

  /**
   * n standard normals as float32: the same numbers, in the same order, as n calls of normal()
   * (tests/util/rng.test.ts), with the generator inlined on locals: the sampler and the training loop
   * draw 131,072 per step at S/2, which took 6–8 ms through normal() and takes 4–6 ms here (measured on
   * a CPU machine of this project).
   */
  normals(n: number): Float32Array {
    const out = new Float32Array(n);
    let i = 0;
    if (n > 0 && this.spare !== null) {
      out[i++] = this.spare;
      this.spare = null;
    }
    const st = this.s;
    let s0 = st[0]!;
    let s1 = st[1]!;
    let s2 = st[2]!;
    let s3 = st[3]!;
    // xoshiro128** (nextU32) and uniform() inlined on the locals; four draws per Box–Muller pair
    const draw = new Float64Array(2);
    while (i < n) {
      for (let k = 0; k < 2;) {
        let hi = 0;
        for (let h = 0; h < 2; h++) {
          const result = Math.imul(rotl(Math.imul(s1, 5), 7), 9) >>> 0;
          const t = s1 << 9;
          s2 ^= s0;
          s3 ^= s1;
          s1 ^= s2;
          s0 ^= s3;
          s2 ^= t;
          s3 = (s3 << 11) | (s3 >>> 21);
          if (h === 0) hi = result >>> 5;
          else draw[k] = (hi * 67108864 + (result >>> 6)) / 9007199254740992;
        }
        if (k > 0 || draw[0] !== 0) k++; // u is redrawn while it is 0, as normal() does
      }
      const u = draw[0]!;
      const v = draw[1]!;
      const r = Math.sqrt(-2 * Math.log(u));
      out[i++] = r * Math.cos(2 * Math.PI * v);
      const second = r * Math.sin(2 * Math.PI * v);
      if (i < n) out[i++] = second;
      else this.spare = second;
    }
    st[0] = s0;
    st[1] = s1;
    st[2] = s2;
    st[3] = s3;
    return out;
  }

  /** Fisher–Yates permutation of 0..n-1 */
  permutation(n: number): Int32Array {
    const p = new Int32Array(n);
    for (let i = 0; i < n; i++) p[i] = i;
    for (let i = n - 1; i > 0; i--) {
      const j = Math.floor(this.uniform() * (i + 1));
      const t = p[i]!;
      p[i] = p[j]!;
      p[j] = t;
    }
    return p;
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
