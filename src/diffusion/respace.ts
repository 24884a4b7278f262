// Timestep respacing: keep a subset of an original T-step process and rebuild its betas so that
// the kept steps have the same ᾱ as in the original (improved DDPM §4, the reference's
// `space_timesteps` and `SpacedDiffusion`).
//
//   "250", "50", "20"   one section: that many steps, evenly strided over [0, T−1]
//   "7,3"               T split into equal sections (earlier ones one longer when T does not divide),
//                       7 steps strided over the first, 3 over the second
//   "ddim20"            the DDIM paper's fixed integer stride: range(0, T, s) for the smallest s
//                       giving exactly 20 steps
//   ""                  every step (the reference still rebuilds the betas through the same path)
import { UserError } from '../util/errors.js';

/** Python's round(): halves go to the even neighbour (the reference relies on it for "7,3"). */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * The sorted original timesteps kept by `sectionCounts` out of `T` (reference: space_timesteps).
 * Throws UserError when the request is impossible, naming why.
 */
export function spaceTimesteps(T: number, sectionCounts: string | readonly number[]): number[] {
  let counts: number[];
  if (typeof sectionCounts === 'string') {
    const spec = sectionCounts.trim();
    if (spec === '') return Array.from({ length: T }, (_, i) => i);
    if (spec.startsWith('ddim')) {
      const desired = Number(spec.slice(4));
      if (!Number.isInteger(desired) || desired < 1) {
        throw new UserError(`respacing '${sectionCounts}': expected 'ddimN' with N a positive integer (e.g. ddim20)`);
      }
      for (let stride = 1; stride < T; stride++) {
        if (Math.ceil(T / stride) === desired) return Array.from({ length: desired }, (_, i) => i * stride);
      }
      throw new UserError(
        `respacing '${sectionCounts}': cannot take exactly ${desired} of ${T} steps with an integer stride (DDIM striding); use plain section counts such as '${desired}'`,
      );
    }
    counts = spec.split(',').map((s) => Number(s.trim()));
    if (counts.some((c) => !Number.isInteger(c) || c < 1)) {
      throw new UserError(
        `respacing '${sectionCounts}': expected comma-separated positive integers (e.g. '250' or '7,3') or 'ddimN'`,
      );
    }
  } else {
    counts = [...sectionCounts];
  }
  const sizePer = Math.floor(T / counts.length);
  const extra = T % counts.length;
  let start = 0;
  const steps = new Set<number>();
  counts.forEach((count, i) => {
    const size = sizePer + (i < extra ? 1 : 0);
    if (size < count)
      throw new UserError(`respacing: cannot take ${count} steps from a section of ${size} (of ${T} diffusion steps)`);
    const stride = count <= 1 ? 1 : (size - 1) / (count - 1);
    let cur = 0;
    for (let k = 0; k < count; k++) {
      steps.add(start + roundHalfEven(cur));
      cur += stride;
    }
    start += size;
  });
  return [...steps].sort((a, b) => a - b);
}

/**
 * New betas for the kept steps: β'_k = 1 − ᾱ_{t_k} / ᾱ_{t_{k−1}} (ᾱ before the first kept step = 1),
 * and the map from respaced index k to original timestep t_k (reference: SpacedDiffusion.__init__).
 */
export function respaceBetas(
  betas: Float64Array,
  keep: readonly number[],
): { betas: Float64Array; timestepMap: Int32Array } {
  const use = new Set(keep);
  const out: number[] = [];
  const map: number[] = [];
  let alphaBar = 1;
  let last = 1;
  for (let i = 0; i < betas.length; i++) {
    alphaBar *= 1 - betas[i]!;
    if (use.has(i)) {
      out.push(1 - alphaBar / last);
      last = alphaBar;
      map.push(i);
    }
  }
  return { betas: Float64Array.from(out), timestepMap: Int32Array.from(map) };
}
