// The SD-VAE golden fixtures (tests/fixtures/vae, copied from the PyTorch reference; README there) and
// comparisons with the suggested float32 tolerance: |a − b| ≤ 1e-4 or |a − b| ≤ 1e-4·|b|, per value.
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { readSafetensors } from '../../src/io/safetensors.js';
import { toFloat64, type TensorMap } from '../../src/io/tensor.js';

export const VAE_FIXTURES = resolve(import.meta.dirname, '..', 'fixtures', 'vae');

export function vaeFixture(name: string): string {
  return join(VAE_FIXTURES, name);
}

export const VAE_JSON = JSON.parse(readFileSync(vaeFixture('vae_fixtures.json'), 'utf8')) as {
  sd_vae_ft_reference: {
    param_counts: Record<string, number>;
    num_tensors: number;
    ldm_config: Record<string, unknown>;
  };
  sets: {
    vae_tiny: {
      param_counts: Record<string, number>;
      num_tensors: number;
      ldm_config: Record<string, unknown>;
      diffusers_config: Record<string, unknown>;
    };
  };
};

/** Every weight form of the same tiny VAE, with the config each needs (undefined: from the folder or none). */
export const WEIGHT_FORMS: { name: string; file: string }[] = [
  { name: 'ldm safetensors', file: 'vae_tiny.ldm.safetensors' },
  { name: 'diffusers (to_q/to_k/to_v/to_out.0)', file: 'vae_tiny.diffusers.safetensors' },
  { name: 'diffusers legacy (query/key/value/proj_attn)', file: 'vae_tiny.diffusers_legacy.safetensors' },
  { name: 'full SD checkpoint (first_stage_model.)', file: 'vae_tiny.sd.safetensors' },
  { name: 'ldm .ckpt (state_dict, model_ema.*)', file: 'vae_tiny.ldm.ckpt' },
];

let io: TensorMap | undefined;
export function vaeIo(): TensorMap {
  io ??= readSafetensors(vaeFixture('vae_tiny.io.safetensors')).tensors;
  return io;
}

/** Worst violation of |a − b| ≤ atol + 0 and |a − b| ≤ rtol·|b| taken together: 0 when every value passes one of them. */
export function worstAbsOrRel(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  atol = 1e-4,
  rtol = 1e-4,
): { maxAbs: number; failures: number } {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let maxAbs = 0;
  let failures = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    maxAbs = Math.max(maxAbs, d);
    if (!(d <= atol || d <= rtol * Math.abs(b[i]!))) failures++;
  }
  return { maxAbs, failures };
}

export function ref(name: string): Float64Array {
  const t = vaeIo().get(name);
  if (!t) throw new Error(`vae_tiny.io has no '${name}'`);
  return toFloat64(t);
}
