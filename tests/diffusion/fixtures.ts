// Loads the golden diffusion fixtures (tests/fixtures/diffusion.safetensors) and describes the
// eight processes as the reference configured them (fixtures.json, key "diffusion").
import { readSafetensors } from '../../src/io/safetensors.js';
import { getTensor, toFloat32, toFloat64, type TensorMap } from '../../src/io/tensor.js';
import type { DiffusionConfig } from '../../src/diffusion/process.js';
import { fixture } from '../helpers.js';

let cache: TensorMap | undefined;
export function diffusionFixtures(): TensorMap {
  cache ??= readSafetensors(fixture('diffusion.safetensors')).tensors;
  return cache;
}

export const f64 = (name: string): Float64Array => toFloat64(getTensor(diffusionFixtures(), name));
export const f32 = (name: string): Float32Array => toFloat32(getTensor(diffusionFixtures(), name));
export const shape = (name: string): number[] => getTensor(diffusionFixtures(), name).shape;
export const ints = (name: string): number[] => Array.from(toFloat64(getTensor(diffusionFixtures(), name)));

/** The reference's create_diffusion settings: linear 1000 steps, learned-range variance, hybrid loss. */
export const PROCESSES: Record<string, Partial<DiffusionConfig>> = {
  full: { respacing: '' },
  r250: { respacing: '250' },
  r50: { respacing: '50' },
  r20: { respacing: '20' },
  r7_3: { respacing: '7,3' },
  ddim20: { respacing: 'ddim20' },
  v_zsnr_full: { respacing: '', parameterization: 'v', zeroTerminalSnr: true },
  v_zsnr_r20: { respacing: '20', parameterization: 'v', zeroTerminalSnr: true },
};

/**
 * Error relative to the array's scale: max|a − b| / max|b|. Element-wise relative error is not a
 * usable criterion for float32 results that pass through cancellation (x_t/√ᾱ − √(1/ᾱ−1) ε) or
 * transcendental functions, where a 1-ulp difference in exp/log between PyTorch and JS changes
 * near-zero elements by a large factor of themselves; the element-wise figure is reported too.
 */
export function scaleRelErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  let s = 0;
  for (let i = 0; i < a.length; i++) {
    m = Math.max(m, Math.abs(a[i]! - b[i]!));
    s = Math.max(s, Math.abs(b[i]!));
  }
  if (Number.isNaN(m)) return NaN;
  return s === 0 ? m : m / s;
}

/** Element-wise relative error with a floor of `floorFrac`·max|b| under the denominator. */
export function elemRelErr(a: ArrayLike<number>, b: ArrayLike<number>, floorFrac = 0): number {
  let s = 0;
  for (let i = 0; i < b.length; i++) s = Math.max(s, Math.abs(b[i]!));
  const floor = Math.max(s * floorFrac, 1e-30);
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const e = Math.abs(a[i]! - b[i]!) / Math.max(Math.abs(b[i]!), floor);
    if (Number.isNaN(e)) return NaN;
    m = Math.max(m, e);
  }
  return m;
}
