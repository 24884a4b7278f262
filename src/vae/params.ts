// The AutoencoderKL parameter tree as a shape-only list, under the ldm (CompVis) state_dict names,
// which are this tool's canonical VAE names (diffusers files are renamed to them at load: load.ts).
// Counting walks this list, so the real SD VAE is counted without allocating a single weight.
//
//   encoder.conv_in                                   [B0, C, 3, 3]
//   encoder.down.{i}.block.{j}.{norm1,conv1,norm2,conv2,nin_shortcut}   ResnetBlock (nin_shortcut iff channels change)
//   encoder.down.{i}.downsample.conv                  [Bi, Bi, 3, 3] for i < L-1
//   encoder.mid.{block_1, attn_1.{norm,q,k,v,proj_out}, block_2}        at B_{L-1} channels
//   encoder.norm_out, encoder.conv_out                [2z, B_{L-1}, 3, 3]
//   quant_conv [2E, 2z, 1, 1]   post_quant_conv [z, E, 1, 1]
//   decoder.conv_in                                   [B_{L-1}, z, 3, 3]
//   decoder.mid.*                                     as the encoder's
//   decoder.up.{i}.block.{j} (j ≤ R), decoder.up.{i}.upsample.conv (i > 0)   run from i = L-1 down to 0
//   decoder.norm_out, decoder.conv_out                [Cout, B0, 3, 3]
import { numel } from '../util/shapes.js';
import type { VaeConfig } from './config.js';

export interface VaeParamSpec {
  name: string;
  shape: number[];
}

function conv(name: string, out: number, inp: number, k: number): VaeParamSpec[] {
  return [
    { name: `${name}.weight`, shape: [out, inp, k, k] },
    { name: `${name}.bias`, shape: [out] },
  ];
}

function norm(name: string, c: number): VaeParamSpec[] {
  return [
    { name: `${name}.weight`, shape: [c] },
    { name: `${name}.bias`, shape: [c] },
  ];
}

/** ResnetBlock(in → out) without time embedding: norm1, conv1, norm2, conv2 (+ 1×1 nin_shortcut when in ≠ out). */
export function resnetSpec(p: string, inp: number, out: number): VaeParamSpec[] {
  const s = [
    ...norm(`${p}.norm1`, inp),
    ...conv(`${p}.conv1`, out, inp, 3),
    ...norm(`${p}.norm2`, out),
    ...conv(`${p}.conv2`, out, out, 3),
  ];
  if (inp !== out) s.push(...conv(`${p}.nin_shortcut`, out, inp, 1));
  return s;
}

/** Single-head AttnBlock: norm, q, k, v, proj_out as 1×1 convs [C, C, 1, 1]. */
export function attnSpec(p: string, c: number): VaeParamSpec[] {
  return [
    ...norm(`${p}.norm`, c),
    ...conv(`${p}.q`, c, c, 1),
    ...conv(`${p}.k`, c, c, 1),
    ...conv(`${p}.v`, c, c, 1),
    ...conv(`${p}.proj_out`, c, c, 1),
  ];
}

function midSpec(p: string, c: number): VaeParamSpec[] {
  return [...resnetSpec(`${p}.block_1`, c, c), ...attnSpec(`${p}.attn_1`, c), ...resnetSpec(`${p}.block_2`, c, c)];
}

export function encoderSpecs(c: VaeConfig): VaeParamSpec[] {
  const B = c.blockOutChannels;
  const L = B.length;
  const s: VaeParamSpec[] = [...conv('encoder.conv_in', B[0]!, c.inChannels, 3)];
  let ch = B[0]!;
  for (let i = 0; i < L; i++) {
    for (let j = 0; j < c.layersPerBlock; j++) {
      s.push(...resnetSpec(`encoder.down.${i}.block.${j}`, ch, B[i]!));
      ch = B[i]!;
    }
    if (i < L - 1) s.push(...conv(`encoder.down.${i}.downsample.conv`, ch, ch, 3));
  }
  s.push(
    ...midSpec('encoder.mid', ch),
    ...norm('encoder.norm_out', ch),
    ...conv('encoder.conv_out', 2 * c.zChannels, ch, 3),
  );
  return s;
}

export function decoderSpecs(c: VaeConfig): VaeParamSpec[] {
  const B = c.blockOutChannels;
  const L = B.length;
  let ch = B[L - 1]!;
  const s: VaeParamSpec[] = [...conv('decoder.conv_in', ch, c.zChannels, 3), ...midSpec('decoder.mid', ch)];
  for (let i = L - 1; i >= 0; i--) {
    for (let j = 0; j <= c.layersPerBlock; j++) {
      s.push(...resnetSpec(`decoder.up.${i}.block.${j}`, ch, B[i]!));
      ch = B[i]!;
    }
    if (i > 0) s.push(...conv(`decoder.up.${i}.upsample.conv`, ch, ch, 3));
  }
  s.push(...norm('decoder.norm_out', ch), ...conv('decoder.conv_out', c.outChannels, ch, 3));
  return s;
}

/** Every parameter of the AutoencoderKL (it has no buffers), ldm names. */
export function vaeParamSpecs(c: VaeConfig): VaeParamSpec[] {
  return [
    ...encoderSpecs(c),
    ...decoderSpecs(c),
    ...conv('quant_conv', 2 * c.embedDim, 2 * c.zChannels, 1),
    ...conv('post_quant_conv', c.zChannels, c.embedDim, 1),
  ];
}

export interface VaeParamCount {
  /** `encoder.*` only (the encode path adds quant_conv) */
  encoder: number;
  /** `decoder.*` only (the decode path adds post_quant_conv) */
  decoder: number;
  quant_conv: number;
  post_quant_conv: number;
  total: number;
  /** number of tensors in the state_dict */
  tensors: number;
}

/** Counts from (name, shape) pairs, grouped by the first name component. */
export function countVae(entries: Iterable<{ name: string; shape: readonly number[] }>): VaeParamCount {
  const r: VaeParamCount = { encoder: 0, decoder: 0, quant_conv: 0, post_quant_conv: 0, total: 0, tensors: 0 };
  for (const { name, shape } of entries) {
    const n = numel(shape);
    const mod = name.split('.')[0] as 'encoder' | 'decoder' | 'quant_conv' | 'post_quant_conv';
    r[mod] += n;
    r.total += n;
    r.tensors++;
  }
  return r;
}

/** Parameter count of a configuration from shapes only (allocates nothing). */
export function countVaeParams(c: VaeConfig): VaeParamCount {
  return countVae(vaeParamSpecs(c));
}
