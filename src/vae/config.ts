// The AutoencoderKL ("kl-f8", the Stable Diffusion VAE) configuration, in one typed record, read from
// either of the two vocabularies users have:
//   diffusers config.json  block_out_channels, layers_per_block, norm_num_groups, latent_channels, …
//   ldm (CompVis)          ddconfig {ch, ch_mult, num_res_blocks, z_channels, …}, embed_dim
// or inferred from the tensor shapes of an ldm state_dict (with SD's 32 groups, which ldm hard-codes).
//
// Shape legend (NCHW at the public edges, as everywhere in this tool): N batch, C image channels,
// E latent channels, H/W image size, h/w = H/2^(L-1), W/2^(L-1) latent size (L levels; 8× for SD).
import { readFileSync } from 'node:fs';
import { UserError } from '../util/errors.js';
import { requireFile } from '../util/fs.js';

export interface VaeConfig {
  /** image channels in (ldm in_channels) */
  inChannels: number;
  /** image channels out (ldm out_ch) */
  outChannels: number;
  /** channels of each level (ldm ch·ch_mult[i]; diffusers block_out_channels) */
  blockOutChannels: number[];
  /** ResnetBlocks per encoder level; the decoder has one more per level (ldm num_res_blocks) */
  layersPerBlock: number;
  /** GroupNorm groups (ldm hard-codes 32) */
  normNumGroups: number;
  /** encoder output / decoder input channels (ldm z_channels) */
  zChannels: number;
  /** latent channels E after quant_conv (ldm embed_dim; diffusers has one latent_channels for both) */
  embedDim: number;
  /** latent = posterior sample · scalingFactor (0.18215 for SD) */
  scalingFactor: number;
}

export const SD_SCALING_FACTOR = 0.18215;
export const SD_NUM_GROUPS = 32;

/** The SD VAE (sd-vae-ft-ema / sd-vae-ft-mse / vae-ft-mse-840000): ch 128, ch_mult [1,2,4,4], 2 res blocks, 32 groups. */
export const SD_VAE_CONFIG: VaeConfig = {
  inChannels: 3,
  outChannels: 3,
  blockOutChannels: [128, 256, 512, 512],
  layersPerBlock: 2,
  normNumGroups: SD_NUM_GROUPS,
  zChannels: 4,
  embedDim: 4,
  scalingFactor: SD_SCALING_FACTOR,
};

/** Spatial downsampling factor between image and latent: 2^(L-1) (8 for SD). */
export function downFactor(c: VaeConfig): number {
  return 2 ** (c.blockOutChannels.length - 1);
}

/** Cross-field rules every configuration must satisfy (GroupNorm needs groups | channels). */
export function checkVaeConfig(c: VaeConfig, source: string): VaeConfig {
  const ints: [string, number][] = [
    ['in channels', c.inChannels],
    ['out channels', c.outChannels],
    ['layers per block', c.layersPerBlock],
    ['norm groups', c.normNumGroups],
    ['z channels', c.zChannels],
    ['embed dim', c.embedDim],
    ...c.blockOutChannels.map((b, i): [string, number] => [`block_out_channels[${i}]`, b]),
  ];
  for (const [what, v] of ints) {
    if (!Number.isInteger(v) || v < 1) throw new UserError(`${source}: ${what} is ${v}, expected a positive integer`);
  }
  if (c.blockOutChannels.length < 1) throw new UserError(`${source}: block_out_channels is empty`);
  for (const b of c.blockOutChannels) {
    if (b % c.normNumGroups !== 0)
      throw new UserError(
        `${source}: ${b} channels are not divisible into ${c.normNumGroups} GroupNorm groups (set norm_num_groups)`,
      );
  }
  if (!(c.scalingFactor > 0)) throw new UserError(`${source}: scaling_factor is ${c.scalingFactor}, expected > 0`);
  return c;
}

type Obj = Record<string, unknown>;

function num(o: Obj, key: string, source: string, dflt?: number): number {
  const v = o[key];
  if (v === undefined && dflt !== undefined) return dflt;
  if (typeof v !== 'number') throw new UserError(`${source}: '${key}' is ${JSON.stringify(v)}, expected a number`);
  return v;
}

function numList(o: Obj, key: string, source: string): number[] {
  const v = o[key];
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'number'))
    throw new UserError(`${source}: '${key}' is ${JSON.stringify(v)}, expected a list of numbers`);
  return v as number[];
}

/** diffusers `AutoencoderKL` config.json → VaeConfig (unsupported variants are refused by name). */
export function fromDiffusersConfig(o: Obj, source: string): VaeConfig {
  if (o._class_name !== undefined && o._class_name !== 'AutoencoderKL') {
    throw new UserError(
      `${source}: _class_name is '${String(o._class_name)}', only AutoencoderKL (the SD VAE) is supported`,
    );
  }
  for (const key of ['use_quant_conv', 'use_post_quant_conv', 'mid_block_add_attention']) {
    if (o[key] === false) throw new UserError(`${source}: '${key}: false' is not supported (the SD VAE has it true)`);
  }
  if (o.act_fn !== undefined && o.act_fn !== 'silu')
    throw new UserError(`${source}: act_fn '${String(o.act_fn)}' is not supported (the SD VAE uses silu)`);
  const latent = num(o, 'latent_channels', source, 4);
  return checkVaeConfig(
    {
      inChannels: num(o, 'in_channels', source, 3),
      outChannels: num(o, 'out_channels', source, 3),
      blockOutChannels: o.block_out_channels === undefined ? [64] : numList(o, 'block_out_channels', source),
      layersPerBlock: num(o, 'layers_per_block', source, 1),
      normNumGroups: num(o, 'norm_num_groups', source, 32),
      zChannels: latent,
      embedDim: latent,
      scalingFactor: num(o, 'scaling_factor', source, SD_SCALING_FACTOR),
    },
    source,
  );
}

/** ldm config (`{ddconfig: {...}, embed_dim}` or the ddconfig keys at the top level, `num_groups` optional) → VaeConfig. */
export function fromLdmConfig(o: Obj, source: string): VaeConfig {
  const dd = (typeof o.ddconfig === 'object' && o.ddconfig !== null ? o.ddconfig : o) as Obj;
  if (dd.double_z === false)
    throw new UserError(`${source}: double_z false is not an AutoencoderKL (it needs mean and logvar)`);
  const attn = dd.attn_resolutions;
  if (Array.isArray(attn) && attn.length > 0)
    throw new UserError(`${source}: attn_resolutions ${JSON.stringify(attn)} is not supported (the SD VAE has none)`);
  const ch = num(dd, 'ch', source);
  const z = num(dd, 'z_channels', source);
  return checkVaeConfig(
    {
      inChannels: num(dd, 'in_channels', source, 3),
      outChannels: num(dd, 'out_ch', source, 3),
      blockOutChannels: numList(dd, 'ch_mult', source).map((m) => ch * m),
      layersPerBlock: num(dd, 'num_res_blocks', source),
      normNumGroups: num(o, 'num_groups', source, num(dd, 'num_groups', source, SD_NUM_GROUPS)),
      zChannels: z,
      embedDim: num(o, 'embed_dim', source, num(dd, 'embed_dim', source, z)),
      scalingFactor: num(o, 'scale_factor', source, num(o, 'scaling_factor', source, SD_SCALING_FACTOR)),
    },
    source,
  );
}

/** Either vocabulary: diffusers keys (block_out_channels) or ldm keys (ch/ch_mult or ddconfig). */
export function parseVaeConfig(o: unknown, source: string): VaeConfig {
  if (typeof o !== 'object' || o === null || Array.isArray(o)) throw new UserError(`${source}: expected a JSON object`);
  const obj = o as Obj;
  if ('block_out_channels' in obj || obj._class_name !== undefined) return fromDiffusersConfig(obj, source);
  if ('ddconfig' in obj || 'ch_mult' in obj) return fromLdmConfig(obj, source);
  throw new UserError(
    `${source}: not a VAE config: expected diffusers keys (block_out_channels, layers_per_block, norm_num_groups, latent_channels) or ldm keys (ddconfig: {ch, ch_mult, num_res_blocks, z_channels}, embed_dim)`,
  );
}

export function readVaeConfig(path: string): VaeConfig {
  requireFile(path, 'VAE config');
  let obj: unknown;
  try {
    obj = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new UserError(`VAE config '${path}' is not valid JSON: ${(e as Error).message}`);
  }
  return parseVaeConfig(obj, `VAE config '${path}'`);
}

/** The configuration as diffusers' config.json spells it (written beside exported weights and in provenance). */
export function toDiffusersConfig(c: VaeConfig): Record<string, unknown> {
  const L = c.blockOutChannels.length;
  return {
    _class_name: 'AutoencoderKL',
    act_fn: 'silu',
    block_out_channels: c.blockOutChannels,
    down_block_types: Array(L).fill('DownEncoderBlock2D'),
    up_block_types: Array(L).fill('UpDecoderBlock2D'),
    in_channels: c.inChannels,
    out_channels: c.outChannels,
    latent_channels: c.embedDim,
    layers_per_block: c.layersPerBlock,
    norm_num_groups: c.normNumGroups,
    scaling_factor: c.scalingFactor,
  };
}
