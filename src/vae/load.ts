// Every form SD-VAE weights come in → one state_dict under ldm names → an AutoencoderKL.
//
//   a diffusers folder        config.json + diffusion_pytorch_model.safetensors (or .bin), also a
//                             pipeline folder holding them under vae/
//   a diffusers file          current attention names (to_q/to_k/to_v/to_out.0, Linear [C, C]) or the
//                             legacy ones (query/key/value/proj_attn); config from --config, else inferred
//   an ldm checkpoint         .safetensors, .ckpt/.pt (zip or legacy torch.save): bare, under
//                             `state_dict`, or under `first_stage_model.`/`vae.` as in a full SD checkpoint
//
// Loader rules (as diffusers' and the A1111 webui's converters): use `state_dict` when present; keep only
// `first_stage_model.` (or `vae.`) keys when present, prefix stripped; drop `loss.*` and `model_ema.*`;
// a file with `.down_blocks.`/`.mid_block.` keys is diffusers and is renamed; attention weights [C, C],
// [C, C, 1] and [C, C, 1, 1] are all accepted. Without a config, the architecture is inferred from the
// shapes with 32 GroupNorm groups (ldm hard-codes 32). Every expected tensor must be present with its
// exact shape and nothing else may remain: the first violation is a UserError naming the tensor.
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { readAny } from '../io/index.js';
import { toFloat32, type HostTensor, type TensorMap } from '../io/tensor.js';
import { UserError } from '../util/errors.js';
import { requireFile } from '../util/fs.js';
import { shapeStr } from '../util/shapes.js';
import { AutoencoderKL } from './autoencoder.js';
import { checkVaeConfig, readVaeConfig, SD_NUM_GROUPS, SD_SCALING_FACTOR, type VaeConfig } from './config.js';
import type { VaeWeights } from './layers.js';
import { vaeParamSpecs } from './params.js';

export type VaeNaming = 'ldm' | 'diffusers' | 'diffusers-legacy';

export interface VaeLoadInfo {
  /** the weights file actually read */
  weightsFile: string;
  /** where the configuration came from */
  configSource: 'given' | 'folder config.json' | 'inferred from shapes';
  naming: VaeNaming;
  /** a prefix stripped from every key (`first_stage_model.`, `vae.`, `state_dict.`), if any */
  prefix: string;
  config: VaeConfig;
}

const DIFFUSERS_WEIGHTS = [
  'diffusion_pytorch_model.safetensors',
  'diffusion_pytorch_model.bin',
  'diffusion_pytorch_model.fp16.safetensors',
];

/** A diffusers folder (or a pipeline folder with vae/) → its weights file and config.json; a file → itself. */
export function resolveVaePath(path: string): { weights: string; folderConfig?: string } {
  if (!existsSync(path))
    throw new UserError(
      `VAE '${path}' does not exist: give a diffusers folder (config.json + diffusion_pytorch_model.safetensors) or a weights file`,
    );
  if (!statSync(path).isDirectory()) return { weights: path };
  for (const dir of [path, join(path, 'vae')]) {
    const weights = DIFFUSERS_WEIGHTS.map((f) => join(dir, f)).find((f) => existsSync(f));
    if (weights) {
      const cfg = join(dir, 'config.json');
      return { weights, folderConfig: existsSync(cfg) ? cfg : undefined };
    }
  }
  throw new UserError(
    `VAE folder '${path}' holds no ${DIFFUSERS_WEIGHTS[0]} (nor vae/${DIFFUSERS_WEIGHTS[0]}): give a diffusers VAE folder or the weights file itself`,
  );
}

/** diffusers key → ldm key (`L` = number of levels, for the decoder's reversed level index). */
function diffusersToLdm(key: string, L: number): string {
  let k = key;
  k = k.replace(/^(encoder|decoder)\.conv_norm_out\./, '$1.norm_out.');
  k = k.replace(/^encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\./, 'encoder.down.$1.block.$2.');
  k = k.replace(/^encoder\.down_blocks\.(\d+)\.downsamplers\.0\.conv\./, 'encoder.down.$1.downsample.conv.');
  k = k.replace(
    /^decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\./,
    (_m, i: string, j: string) => `decoder.up.${L - 1 - Number(i)}.block.${j}.`,
  );
  k = k.replace(
    /^decoder\.up_blocks\.(\d+)\.upsamplers\.0\.conv\./,
    (_m, i: string) => `decoder.up.${L - 1 - Number(i)}.upsample.conv.`,
  );
  k = k.replace(/\.mid_block\.resnets\.0\./, '.mid.block_1.').replace(/\.mid_block\.resnets\.1\./, '.mid.block_2.');
  k = k.replace(/\.mid_block\.attentions\.0\./, '.mid.attn_1.');
  k = k.replace(/\.attn_1\.group_norm\./, '.attn_1.norm.');
  k = k
    .replace(/\.attn_1\.(?:to_q|query)\./, '.attn_1.q.')
    .replace(/\.attn_1\.(?:to_k|key)\./, '.attn_1.k.')
    .replace(/\.attn_1\.(?:to_v|value)\./, '.attn_1.v.');
  k = k.replace(/\.attn_1\.(?:to_out\.0|proj_attn)\./, '.attn_1.proj_out.');
  k = k.replace(/\.conv_shortcut\./, '.nin_shortcut.');
  return k;
}

export interface VaeStateDict {
  /** ldm names, PyTorch layouts ([out, in, kh, kw] convs, attention as [C, C, 1, 1]) */
  tensors: TensorMap;
  /** ldm name → the name in the file (for messages) */
  original: Map<string, string>;
  naming: VaeNaming;
  prefix: string;
}

/** Reads a weights file of any form into ldm names (no architecture check yet). */
export function readVaeStateDict(file: string): VaeStateDict {
  requireFile(file, 'VAE weights');
  let all = readAny(file).tensors;
  const keys = () => [...all.keys()];
  let prefix = '';
  const strip = (p: string): void => {
    all = new Map([...all].filter(([k]) => k.startsWith(p)).map(([k, v]) => [k.slice(p.length), v]));
    prefix += p;
  };
  if (keys().some((k) => k.startsWith('state_dict.'))) strip('state_dict.');
  for (const p of ['first_stage_model.', 'vae.']) {
    if (keys().some((k) => k.startsWith(p))) {
      strip(p);
      break;
    }
  }
  for (const k of keys()) if (k.startsWith('loss.') || k.startsWith('model_ema.')) all.delete(k);
  if (all.size === 0)
    throw new UserError(`VAE weights '${file}' hold no tensors of a VAE (after taking ${prefix || 'the top level'})`);
  const isDiffusers = keys().some((k) => k.includes('.down_blocks.') || k.includes('.mid_block.'));
  const naming: VaeNaming = !isDiffusers
    ? 'ldm'
    : keys().some((k) => /\.(query|key|value|proj_attn)\.weight$/.test(k))
      ? 'diffusers-legacy'
      : 'diffusers';
  const L = isDiffusers
    ? 1 +
      Math.max(
        -1,
        ...keys()
          .map((k) => /^decoder\.up_blocks\.(\d+)\./.exec(k))
          .filter((m) => m !== null)
          .map((m) => Number(m[1])),
      )
    : 0;
  const tensors: TensorMap = new Map();
  const original = new Map<string, string>();
  for (const [k, t] of all) {
    const name = isDiffusers ? diffusersToLdm(k, L) : k;
    if (tensors.has(name))
      throw new UserError(
        `VAE weights '${file}': '${k}' and '${original.get(name)}' are the same tensor under two names; the file mixes conventions`,
      );
    // attention projections: Linear [C, C] (diffusers) or [C, C, 1] (very old files) → 1×1 conv [C, C, 1, 1]
    const isAttnWeight = /\.attn_1\.(q|k|v|proj_out)\.weight$/.test(name);
    const shaped: HostTensor =
      isAttnWeight && t.shape.length < 4 && t.shape.length >= 2 ? { ...t, shape: [t.shape[0]!, t.shape[1]!, 1, 1] } : t;
    tensors.set(name, shaped);
    original.set(name, k);
  }
  return { tensors, original, naming, prefix };
}

function need(sd: VaeStateDict, name: string, file: string): number[] {
  const t = sd.tensors.get(name);
  if (!t)
    throw new UserError(
      `VAE weights '${file}' have no tensor '${name}' (ldm name): cannot infer the architecture; is this an AutoencoderKL (SD VAE) file? Give --config to state the architecture`,
    );
  return t.shape;
}

/** The architecture from an ldm-named state_dict's shapes, with `groups` GroupNorm groups (SD: 32). */
export function inferVaeConfig(sd: VaeStateDict, file: string, groups = SD_NUM_GROUPS): VaeConfig {
  const has = (n: string) => sd.tensors.has(n);
  let L = 0;
  while (has(`encoder.down.${L}.block.0.conv1.weight`)) L++;
  let R = 0;
  while (has(`encoder.down.0.block.${R}.conv1.weight`)) R++;
  if (L === 0 || R === 0) need(sd, 'encoder.down.0.block.0.conv1.weight', file);
  const convIn = need(sd, 'encoder.conv_in.weight', file);
  return checkVaeConfig(
    {
      inChannels: convIn[1]!,
      outChannels: need(sd, 'decoder.conv_out.weight', file)[0]!,
      blockOutChannels: Array.from(
        { length: L },
        (_, i) => need(sd, `encoder.down.${i}.block.0.conv1.weight`, file)[0]!,
      ),
      layersPerBlock: R,
      normNumGroups: groups,
      zChannels: need(sd, 'encoder.conv_out.weight', file)[0]! / 2,
      embedDim: need(sd, 'quant_conv.weight', file)[0]! / 2,
      scalingFactor: SD_SCALING_FACTOR,
    },
    `VAE weights '${file}' (architecture inferred from shapes, ${groups} groups)`,
  );
}

/** Checks the state_dict against the architecture: every tensor present, exact shapes, nothing extra. */
export function checkVaeStateDict(sd: VaeStateDict, c: VaeConfig, file: string): void {
  const specs = vaeParamSpecs(c);
  const named = (n: string) => (sd.original.get(n) !== n ? `'${sd.original.get(n)}' (ldm '${n}')` : `'${n}'`);
  for (const s of specs) {
    const t = sd.tensors.get(s.name);
    if (!t)
      throw new UserError(
        `VAE weights '${file}' are missing tensor '${s.name}' (ldm name) of shape ${shapeStr(s.shape)}: the file is partial or of another architecture (${sd.naming} naming detected)`,
      );
    if (t.shape.join(',') !== s.shape.join(',')) {
      throw new UserError(
        `VAE weights '${file}': tensor ${named(s.name)} has shape ${shapeStr(t.shape)}, expected ${shapeStr(s.shape)} for the configuration (block_out_channels [${c.blockOutChannels.join(', ')}], layers_per_block ${c.layersPerBlock}, latent ${c.embedDim}); give the matching --config`,
      );
    }
  }
  const expected = new Set(specs.map((s) => s.name));
  const extra = [...sd.tensors.keys()].filter((k) => !expected.has(k));
  if (extra.length > 0) {
    throw new UserError(
      `VAE weights '${file}' hold tensor ${named(extra[0]!)} that an AutoencoderKL of this configuration does not have${extra.length > 1 ? ` (and ${extra.length - 1} more)` : ''}: the file is of another architecture or the config is wrong`,
    );
  }
}

/** PyTorch [out, in, kh, kw] → TF.js [kh, kw, in, out] for 4-D weights; vectors as they are. */
function toTf(t: HostTensor): tf.Tensor {
  const v = toFloat32(t);
  if (t.shape.length !== 4) return tf.tensor(v, t.shape);
  return tf.tidy(() => tf.tensor4d(v, t.shape as [number, number, number, number]).transpose([2, 3, 1, 0]));
}

export interface LoadVaeOptions {
  /** a config.json (diffusers or ldm keys); overrides a folder's config.json */
  config?: string;
}

/** Loads any supported VAE form. */
export function loadVae(path: string, opts: LoadVaeOptions = {}): { vae: AutoencoderKL; info: VaeLoadInfo } {
  const { weights, folderConfig } = resolveVaePath(path);
  const sd = readVaeStateDict(weights);
  let config: VaeConfig;
  let configSource: VaeLoadInfo['configSource'];
  if (opts.config) {
    config = readVaeConfig(opts.config);
    configSource = 'given';
  } else if (folderConfig) {
    config = readVaeConfig(folderConfig);
    configSource = 'folder config.json';
  } else {
    config = inferVaeConfig(sd, weights);
    configSource = 'inferred from shapes';
  }
  checkVaeStateDict(sd, config, weights);
  const ws: VaeWeights = new Map();
  for (const s of vaeParamSpecs(config)) ws.set(s.name, toTf(sd.tensors.get(s.name)!));
  return {
    vae: new AutoencoderKL(config, ws),
    info: { weightsFile: weights, configSource, naming: sd.naming, prefix: sd.prefix, config },
  };
}
