// `fpdm-exp vae run --vae PATH [--config config.json] --inputs IN.safetensors --out OUT.safetensors`
//   evaluates an SD VAE on given tensors, to compare with the reference:
//     x   [N, C, H, W] in [-1, 1]  →  mean, logvar (clamped to [-30, 20]), std    [N, E, H/f, W/f]
//     eps [N, E, h, w] (with x)    →  sample = mean + std·eps, latent = sample · scaling_factor
//     z   [N, E, h, w]             →  dec = decode(z)                           [N, C, h·f, w·f]
// `fpdm-exp vae info --vae PATH [--config]` prints the detected form, the configuration and exact counts.
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import * as tf from '@tensorflow/tfjs-core';
import { readSafetensors, writeSafetensors } from '../../io/safetensors.js';
import { f32, getTensor, toFloat32, type HostTensor, type TensorMap } from '../../io/tensor.js';
import { UserError } from '../../util/errors.js';
import { requireFile } from '../../util/fs.js';
import { emitJson, log } from '../../util/log.js';
import { numel } from '../../util/shapes.js';
import { posterior, samplePosterior, type AutoencoderKL } from '../../vae/autoencoder.js';
import { downFactor, readVaeConfig, toDiffusersConfig, type VaeConfig } from '../../vae/config.js';
import {
  checkVaeStateDict,
  inferVaeConfig,
  loadVae,
  readVaeStateDict,
  resolveVaePath,
  type VaeLoadInfo,
} from '../../vae/load.js';
import { countVaeParams, type VaeParamCount } from '../../vae/params.js';
import { useBackend, type GlobalOptions } from '../context.js';

export interface VaeRunOptions {
  vae: string;
  config?: string;
  inputs: string;
  out: string;
  /** images (or latents) per forward pass (memory bound), default 8 */
  batch?: number;
}

export interface VaeRunResult {
  out: string;
  tensors: string[];
  naming: VaeLoadInfo['naming'];
  configSource: VaeLoadInfo['configSource'];
  backend: string;
}

function nchw(io: TensorMap, name: string, src: string, channels: number): HostTensor {
  const t = getTensor(io, name, src);
  if (t.shape.length !== 4 || t.shape[1] !== channels) {
    throw new UserError(`${src}: '${name}' has shape [${t.shape.join(', ')}], expected NCHW [N, ${channels}, H, W]`);
  }
  return t;
}

/** Runs `fn` over batches of the leading dimension and concatenates the host results per output name. */
async function batched(
  inputs: HostTensor[],
  batch: number,
  fn: (xs: tf.Tensor4D[]) => Record<string, tf.Tensor4D>,
): Promise<Map<string, HostTensor>> {
  const n = inputs[0]!.shape[0]!;
  const parts = new Map<string, { shape: number[]; chunks: Float32Array[] }>();
  const values = inputs.map((t) => toFloat32(t));
  for (let s = 0; s < n; s += batch) {
    const e = Math.min(n, s + batch);
    const xs = inputs.map((t, i) => {
      const per = numel(t.shape) / t.shape[0]!;
      return tf.tensor4d(values[i]!.subarray(s * per, e * per), [e - s, ...t.shape.slice(1)] as [
        number,
        number,
        number,
        number,
      ]);
    });
    const outs = fn(xs);
    tf.dispose(xs);
    for (const [name, o] of Object.entries(outs)) {
      const d = (await o.data()) as Float32Array;
      const p = parts.get(name) ?? { shape: o.shape.slice(1), chunks: [] };
      p.chunks.push(d.slice());
      parts.set(name, p);
      o.dispose();
    }
  }
  const result = new Map<string, HostTensor>();
  for (const [name, p] of parts) {
    const all = new Float32Array(p.chunks.reduce((a, c) => a + c.length, 0));
    let off = 0;
    for (const c of p.chunks) {
      all.set(c, off);
      off += c.length;
    }
    result.set(name, f32([n, ...p.shape], all));
  }
  return result;
}

export async function evaluateVae(vae: AutoencoderKL, io: TensorMap, src: string, batch = 8): Promise<TensorMap> {
  const c = vae.config;
  const result: TensorMap = new Map();
  if (!io.has('x') && !io.has('z'))
    throw new UserError(`${src} has neither 'x' (images to encode) nor 'z' (latents to decode)`);
  if (io.has('x')) {
    const x = nchw(io, 'x', src, c.inChannels);
    const withEps = io.has('eps');
    const ins = [x];
    if (withEps) {
      const eps = nchw(io, 'eps', src, c.embedDim);
      const f = downFactor(c);
      const want = [x.shape[0]!, c.embedDim, x.shape[2]! / f, x.shape[3]! / f];
      if (eps.shape.join() !== want.join())
        throw new UserError(
          `${src}: 'eps' has shape [${eps.shape.join(', ')}], the posterior of x has [${want.join(', ')}]`,
        );
      ins.push(eps);
    }
    const outs = await batched(ins, batch, ([xb, eb]) =>
      tf.tidy(() => {
        const p = posterior(vae.encodeMoments(xb!));
        const r: Record<string, tf.Tensor4D> = { mean: p.mean, logvar: p.logvar, std: p.std };
        if (eb) {
          r.sample = samplePosterior(p, eb);
          r.latent = r.sample.mul(c.scalingFactor);
        }
        return r;
      }),
    );
    for (const [k, v] of outs) result.set(k, v);
  }
  if (io.has('z')) {
    const z = nchw(io, 'z', src, c.embedDim);
    const outs = await batched([z], batch, ([zb]) => ({ dec: vae.decode(zb!) }));
    result.set('dec', outs.get('dec')!);
  }
  return result;
}

export async function run(o: VaeRunOptions, g: GlobalOptions): Promise<VaeRunResult> {
  requireFile(o.inputs, 'inputs file');
  const backend = await useBackend(g);
  const { vae, info } = loadVae(o.vae, { config: o.config });
  try {
    const io = readSafetensors(o.inputs).tensors;
    const result = await evaluateVae(vae, io, `inputs file '${o.inputs}'`, o.batch ?? 8);
    writeSafetensors(o.out, result, {
      backend: backend.name,
      vae_naming: info.naming,
      vae_config: JSON.stringify(toDiffusersConfig(info.config)),
    });
    log(
      `wrote ${[...result.keys()].join(', ')} to ${o.out} (VAE ${info.naming} naming, config ${info.configSource}, ${backend.name})`,
    );
    return {
      out: o.out,
      tensors: [...result.keys()],
      naming: info.naming,
      configSource: info.configSource,
      backend: backend.name,
    };
  } finally {
    vae.dispose();
  }
}

export interface VaeInfoResult {
  weightsFile: string;
  naming: VaeLoadInfo['naming'];
  prefix: string;
  configSource: VaeLoadInfo['configSource'];
  config: VaeConfig;
  params: VaeParamCount;
}

/** Reads and checks the weights without building the network (no tensors are allocated). */
export function info(o: { vae: string; config?: string }): VaeInfoResult {
  const { weights, folderConfig } = resolveVaePath(o.vae);
  const sd = readVaeStateDict(weights);
  const cfgPath = o.config ?? folderConfig;
  const config = cfgPath ? readVaeConfig(cfgPath) : inferVaeConfig(sd, weights);
  checkVaeStateDict(sd, config, weights);
  return {
    weightsFile: weights,
    naming: sd.naming,
    prefix: sd.prefix,
    configSource: o.config ? 'given' : folderConfig ? 'folder config.json' : 'inferred from shapes',
    config,
    params: countVaeParams(config),
  };
}

function posInt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('expected an integer >= 1');
  return n;
}

export function register(program: Command, globals: () => GlobalOptions): void {
  const vae = program
    .command('vae')
    .description('the SD VAE (AutoencoderKL kl-f8): evaluate it on given tensors, inspect weights');
  vae
    .command('run')
    .description(
      'encode x (→ mean, logvar, std; with eps: sample, latent) and/or decode z (→ dec), to compare with the reference',
    )
    .requiredOption(
      '--vae <path>',
      'a diffusers folder, a diffusers .safetensors (with --config), or an ldm .safetensors/.ckpt (bare or a full SD checkpoint)',
    )
    .option(
      '--config <file>',
      "config.json (diffusers keys, or ldm ddconfig keys); default: the folder's config.json, else inferred from shapes with 32 groups",
    )
    .requiredOption(
      '--inputs <file>',
      'safetensors with x [N,C,H,W] in [-1,1], optional eps [N,E,h,w], and/or z [N,E,h,w]',
    )
    .requiredOption('--out <file>', 'safetensors to write')
    .option('--batch <n>', 'items per forward pass (default 8)', posInt)
    .option('--json', 'print a JSON summary on stdout')
    .action(async (o: VaeRunOptions & { json?: boolean }) => {
      const r = await run(o, globals());
      if (o.json) emitJson(r);
    });
  vae
    .command('info')
    .description('detect the weights form, check every tensor, print the configuration and exact parameter counts')
    .requiredOption('--vae <path>', 'VAE folder or weights file')
    .option('--config <file>', 'config.json (diffusers or ldm keys)')
    .option('--json', 'print JSON on stdout')
    .action((o: { vae: string; config?: string; json?: boolean }) => {
      const r = info(o);
      if (o.json) return emitJson(r);
      const c = r.config;
      log(`${r.weightsFile}: ${r.naming} names${r.prefix ? ` under '${r.prefix}'` : ''}, config ${r.configSource}`);
      log(
        `block_out_channels [${c.blockOutChannels.join(', ')}], layers_per_block ${c.layersPerBlock}, groups ${c.normNumGroups}, z ${c.zChannels}, latent ${c.embedDim}, scaling ${c.scalingFactor}`,
      );
      log(
        `parameters: encoder ${r.params.encoder}, decoder ${r.params.decoder}, quant_conv ${r.params.quant_conv}, post_quant_conv ${r.params.post_quant_conv}, total ${r.params.total} (${r.params.tensors} tensors)`,
      );
    });
}
