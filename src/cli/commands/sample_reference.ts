// `fpdm-exp sample --ckpt FILE.pt --vae PATH [--steps 250 | --budget K …] [--cfg 4] --samples N --out grid.png
//    [--save DIR --png-naming fpdm|dit --label-names names.json] [--npz samples.npz]`
// Samples a checkpoint written by the reference training code (FPDM or DiT train.py, or a released
// DiT state_dict; EMA weights by default) and decodes the latents with the SD VAE exactly as the
// reference samplers do: decode(latent / 0.18215), clamp(127.5x + 128, 0, 255) truncated to uint8.
// Writes PNGs named as the reference names them and/or an .npz (`arr_0` uint8 [N, H, W, 3]) for the
// ADM evaluator and `fpdm-exp fid`. The architecture comes from the file (shapes + stored args) or
// from --config (the reference constructor's keyword arguments).
import { readFileSync, mkdirSync } from 'node:fs';
import { writeGrid } from '../../data/images.js';
import { diffusionConfig } from '../../diffusion/process.js';
import { startProgress } from '../../experiments/progress.js';
import { sampleAtBudget, type SamplingAccount } from '../../experiments/sampling.js';
import { modelFromStateDict } from '../../models/index.js';
import { readModelConfig } from '../../models/load.js';
import { readReferenceCheckpoint } from '../../models/reference_ckpt.js';
import { UserError } from '../../util/errors.js';
import { prepareDir, prepareFileTarget, requireFile } from '../../util/fs.js';
import { log } from '../../util/log.js';
import type { AutoencoderKL } from '../../vae/autoencoder.js';
import { loadVae, type VaeLoadInfo } from '../../vae/load.js';
import { decodeToUint8, nhwcToNchw, writeSampleNpz, writeSamplePngs, type PngNaming } from '../../vae/samples.js';
import { useBackend, type GlobalOptions } from '../context.js';
import { samplePlan, samplerFlags, type SampleCommandOptions } from './sample.js';

export interface ReferenceSampleOptions extends SampleCommandOptions {
  /** reference constructor keyword arguments (JSON) when the file's shapes and args do not say enough */
  config?: string;
  vae?: string;
  vaeConfig?: string;
  /** `ema` or `mse`: which SD VAE fine-tune --vae is, recorded with the result (not checked) */
  vaeVariant?: 'ema' | 'mse';
  npz?: string;
  pngNaming?: PngNaming;
  /** JSON list of class names (e.g. the reference's utils/imagenet-labels.json) for FPDM-style PNG names */
  labelNames?: string;
}

export interface ReferenceSampleResult {
  account: SamplingAccount;
  model: string;
  entry: string;
  trainSteps: number | null;
  vae: (Omit<VaeLoadInfo, 'config'> & { variant: string | null }) | null;
  out: string;
  saved: string | null;
  npz: string | null;
  backend: string;
}

function readLabelNames(path: string): string[] {
  requireFile(path, 'label names file');
  let v: unknown;
  try {
    v = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new UserError(`label names file '${path}' is not JSON: ${(e as Error).message}`);
  }
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string'))
    throw new UserError(`label names file '${path}' must hold a JSON list of strings (one per class)`);
  return v as string[];
}

/**
 * Decodes latent samples [N, E, h, w] with the VAE and writes the grid (`out`), the arr_0 .npz (`npz`)
 * and the PNGs named as the reference (`save`); returns the PNG folder or null.
 */
export async function writeDecoded(
  vae: AutoencoderKL,
  latents: Float32Array,
  shape: [number, number, number, number],
  labels: Int32Array,
  o: { out: string; npz?: string; save?: string; pngNaming?: PngNaming; labelNames?: string[]; batchSize?: number },
): Promise<string | null> {
  const { pixels, shape: s } = await decodeToUint8(vae, latents, shape, o.batchSize ?? 8);
  const [n, H, W, C] = s;
  await writeGrid(o.out, nhwcToNchw(pixels, s), [n, C, H, W], { nrow: Math.max(1, Math.round(Math.sqrt(n))) });
  if (o.npz) writeSampleNpz(o.npz, pixels, s);
  if (!o.save) return null;
  mkdirSync(o.save, { recursive: true });
  await writeSamplePngs(o.save, pixels, s, labels, { naming: o.pngNaming ?? 'fpdm', labelNames: o.labelNames });
  return o.save;
}

export async function runReference(o: ReferenceSampleOptions, g: GlobalOptions): Promise<ReferenceSampleResult> {
  // every output path is checked before the checkpoint is read and sampled, not after
  prepareFileTarget(o.out, '--out grid', { createDir: false });
  if (o.npz) prepareFileTarget(o.npz, '--npz file', { createDir: false });
  if (o.save) prepareDir(o.save, '--save directory');
  const rc = readReferenceCheckpoint(o.ckpt, {
    entry: o.entry,
    config: o.config ? readModelConfig(o.config) : undefined,
  });
  const labelNames = o.labelNames ? readLabelNames(o.labelNames) : undefined;
  const latentModel = rc.config.inChannels !== 1 && rc.config.inChannels !== 3;
  if (latentModel && !o.vae)
    throw new UserError(
      `'${o.ckpt}' is a latent model (${rc.config.inChannels} channels): give --vae (the SD VAE: a diffusers folder or an ldm checkpoint) to decode its samples`,
    );
  const backend = await useBackend(g);
  const { model } = modelFromStateDict(rc.config, rc.weights, {
    strict: true,
    source: `${rc.entry} weights in '${o.ckpt}'`,
  });
  const vaeLoaded = o.vae ? loadVae(o.vae, { config: o.vaeConfig }) : undefined;
  try {
    if (vaeLoaded && vaeLoaded.vae.config.embedDim !== rc.config.inChannels) {
      throw new UserError(
        `the VAE makes ${vaeLoaded.vae.config.embedDim}-channel latents, the model ${rc.config.inChannels}-channel ones: they do not belong together`,
      );
    }
    const diffusion = diffusionConfig({
      parameterization: rc.predictV ? 'v' : 'eps',
      zeroTerminalSnr: rc.zeroTerminalSnr,
      variance: rc.config.learnSigma ? 'learned-range' : 'fixed-large',
      loss: rc.config.learnSigma ? 'hybrid' : 'mse',
    });
    const plan = samplePlan(rc.config, diffusion, o);
    const total = plan.steps * Math.ceil(o.samples / (o.batchSize ?? o.samples));
    const progress = startProgress('sample', total, o.json ? 'plain' : 'auto');
    let done = 0;
    const r = await sampleAtBudget({
      model,
      diffusion,
      plan,
      ...samplerFlags(o),
      onStep: () => progress.update(Math.min(++done, total)),
    });
    progress.stop();
    let saved: string | null = null;
    if (vaeLoaded) {
      saved = await writeDecoded(vaeLoaded.vae, r.samples, r.shape, r.labels, { ...o, labelNames });
    } else {
      await writeGrid(o.out, r.samples, r.shape, { nrow: Math.max(1, Math.round(Math.sqrt(o.samples))) });
      if (o.npz || o.save)
        throw new UserError(
          '--npz/--save of a pixel-space reference checkpoint are not supported: use --out for the grid',
        );
    }
    const a = r.account;
    log(
      `${a.model} (${rc.entry} weights${rc.trainSteps !== null ? `, step ${rc.trainSteps}` : ''}): ${a.n} samples, ${a.steps} ${a.sampler} steps, ${a.blockEvaluations.toFixed(1)} block evaluations per image, ${a.seconds.toFixed(1)} s`,
    );
    log(`grid → ${o.out}${o.npz ? `; arr_0 → ${o.npz}` : ''}${saved ? `; PNGs → ${saved}` : ''}`);
    const vaeInfo = vaeLoaded
      ? {
          weightsFile: vaeLoaded.info.weightsFile,
          configSource: vaeLoaded.info.configSource,
          naming: vaeLoaded.info.naming,
          prefix: vaeLoaded.info.prefix,
          variant: o.vaeVariant ?? null,
        }
      : null;
    return {
      account: a,
      model: a.model,
      entry: rc.entry,
      trainSteps: rc.trainSteps,
      vae: vaeInfo,
      out: o.out,
      saved,
      npz: o.npz ?? null,
      backend: backend.name,
    };
  } finally {
    model.dispose();
    vaeLoaded?.vae.dispose();
  }
}
