// `fpdm-exp sample --ckpt DIR --samples 64 --budget 20 [--steps 40 --iters 12 | --allocation increasing|
//   decreasing|fixed|tolerance [--tolerance 1e-3 --max-iters-per-step N]] [--reuse] [--sampler ddpm|ddim
//   --eta 0] [--cfg 4.0] --seed S --out grid.png [--save samples/] [--batch-size B] [--labels random|cycle]
//   [--entry ema|model] [--json]`   (flags named as the spec's sampling keys: experiments/settings.ts FLAGS)
// Samples a trained checkpoint (the `train` command's directory) at a compute budget and prints what
// was spent. The plan comes from planSampling, as a spec's: a split that does not spend the budget
// exactly is refused with the nearest exact splits. Printed: block evaluations, FLOPs by formula,
// seconds, and for FPDM the fixed-point residual per step.
import type { Command } from 'commander';
import { Option } from 'commander';
import { join } from 'node:path';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { toUint8, writeGrid, writePng } from '../../data/images.js';
import type { SamplingPlan } from '../../diffusion/budget.js';
import type { DiffusionConfig } from '../../diffusion/process.js';
import type { SamplerName } from '../../diffusion/samplers.js';
import type { ModelConfig } from '../../models/config.js';
import { f32, hostTensor } from '../../io/tensor.js';
import { writeSafetensors } from '../../io/safetensors.js';
import { modelFromStateDict } from '../../models/index.js';
import { startProgress } from '../../experiments/progress.js';
import { planModelSampling } from '../../experiments/budget.js';
import { ALLOCATIONS, sampleAtBudget, type Allocation, type SamplingAccount } from '../../experiments/sampling.js';
import { readCheckpoint, tensorsWithPrefix } from '../../training/checkpoint.js';
import type { TrainConfig } from '../../training/loop.js';
import { UserError } from '../../util/errors.js';
import { emitJson, log } from '../../util/log.js';
import { useBackend, type GlobalOptions } from '../context.js';
import { RENAMED_FLAGS } from '../../experiments/settings.js';
import { addRenamedFlags, intArg, numArg } from './train.js';
import { runReference, writeDecoded, type ReferenceSampleOptions } from './sample_reference.js';
import { loadVae, resolveVaePath } from '../../vae/load.js';
import { prepareDir, prepareFileTarget } from '../../util/fs.js';

export interface SampleCommandOptions {
  /** a `train` output directory (holding checkpoint.json) */
  ckpt: string;
  samples: number;
  budget?: number;
  steps?: number;
  iters?: number;
  allocation?: Allocation;
  tolerance?: number;
  maxItersPerStep?: number;
  reuse?: boolean;
  sampler?: SamplerName;
  eta?: number;
  cfg?: number;
  seed?: number;
  out: string;
  save?: string;
  batchSize?: number;
  labels?: 'random' | 'cycle';
  entry?: 'ema' | 'model';
  json?: boolean;
}

export interface SampleCommandResult {
  account: SamplingAccount;
  out: string;
  saved: string | null;
  checkpointStep: number;
  backend: string;
}

/** The sampler's options that the flags set, beside the model, process and plan (both checkpoint kinds). */
export function samplerFlags(o: SampleCommandOptions) {
  return {
    n: o.samples,
    batchSize: o.batchSize,
    reuse: o.reuse,
    sampler: o.sampler,
    eta: o.eta,
    cfgScale: o.cfg ?? null,
    labels: o.labels,
    seed: o.seed ?? 0,
  };
}

/** The plan the flags ask for: planSampling, the function a spec's plans come from. */
export function samplePlan(
  model: ModelConfig,
  diffusion: DiffusionConfig,
  o: Pick<SampleCommandOptions, 'budget' | 'steps' | 'iters' | 'allocation' | 'tolerance' | 'maxItersPerStep'>,
): SamplingPlan {
  return planModelSampling(model, {
    budget: o.budget ?? null,
    steps: o.steps,
    iters: o.iters,
    allocation: o.allocation,
    tolerance: o.tolerance,
    maxItersPerStep: o.maxItersPerStep,
    diffusionSteps: diffusion.diffusionSteps,
  });
}

export async function run(o: SampleCommandOptions, g: GlobalOptions): Promise<SampleCommandResult> {
  prepareFileTarget(o.out, '--out grid', { createDir: false }); // before sampling, not after
  if (o.save) prepareDir(o.save, '--save directory', { create: false });
  const ro = o as SampleCommandOptions & Partial<ReferenceSampleOptions>;
  if (ro.npz && !ro.vae)
    throw new UserError('--npz writes decoded images: give --vae (for a model trained on latents)');
  if (ro.vae) resolveVaePath(ro.vae); // a missing VAE is reported before sampling
  const ckpt = readCheckpoint(o.ckpt);
  if (!ckpt)
    throw new UserError(
      `'${o.ckpt}' holds no checkpoint (no checkpoint.json): give the --out directory of a train command`,
    );
  const cfg = ckpt.meta.config as TrainConfig;
  const backend = await useBackend(g);
  const entry = o.entry ?? 'ema';
  const { model } = modelFromStateDict(cfg.model, tensorsWithPrefix(ckpt.tensors, entry), {
    strict: true,
    source: `${entry} weights in '${o.ckpt}'`,
  });
  try {
    const plan = samplePlan(cfg.model, cfg.diffusion, o);
    const progressTotal = plan.steps;
    const progress = startProgress(
      'sample',
      progressTotal * Math.ceil(o.samples / (o.batchSize ?? o.samples)),
      o.json ? 'plain' : 'auto',
    );
    let done = 0;
    const r = await sampleAtBudget({
      model,
      diffusion: cfg.diffusion,
      plan,
      ...samplerFlags(o),
      stepResiduals: true, // the progress line shows each step's residual
      onStep: (s) => {
        done += 1;
        progress.update(
          Math.min(done, progressTotal * Math.ceil(o.samples / (o.batchSize ?? o.samples))),
          `batch ${s.batch} step ${s.step + 1}/${s.steps}${s.iters !== null ? ` iters ${s.iters}` : ''}${s.residual !== null ? ` residual ${s.residual.toExponential(2)}` : ''}`,
        );
      },
    });
    progress.stop();
    if (ro.vae) {
      // a model trained on latents: decode as the reference's sample.py (grid, PNGs, arr_0 .npz)
      const { vae } = loadVae(ro.vae, { config: ro.vaeConfig });
      try {
        if (vae.config.embedDim !== r.shape[1])
          throw new UserError(
            `the VAE makes ${vae.config.embedDim}-channel latents, the model ${r.shape[1]}-channel ones: they do not belong together`,
          );
        await writeDecoded(vae, r.samples, r.shape, r.labels, {
          out: o.out,
          npz: ro.npz,
          save: o.save,
          pngNaming: ro.pngNaming,
          batchSize: o.batchSize,
        });
      } finally {
        vae.dispose();
      }
    } else await writeGrid(o.out, r.samples, r.shape, { nrow: Math.max(1, Math.round(Math.sqrt(o.samples))) });
    if (o.save && !ro.vae) {
      mkdirSync(o.save, { recursive: true });
      writeSafetensors(
        join(o.save, 'samples.safetensors'),
        new Map([
          ['samples', f32(r.shape, r.samples)],
          ['labels', hostTensor('I32', [o.samples], r.labels)],
        ]),
        { account: JSON.stringify(r.account) },
      );
      const [, C, H, W] = r.shape;
      const per = C * H * W;
      for (let i = 0; i < o.samples; i++)
        await writePng(
          join(o.save, `${String(i).padStart(6, '0')}.png`),
          toUint8(r.samples.subarray(i * per, (i + 1) * per)),
          [C, H, W],
        );
    }
    const a = r.account;
    log(
      `${a.model}: ${a.n} samples, ${a.steps} ${a.sampler} steps${a.itersPerStep ? ` (${a.allocation} allocation${a.reuse ? ', reuse' : ''}: iterations per step ${a.itersPerStep.map((v) => +v.toFixed(2)).join(' ')})` : ''}${a.cfgScale !== null ? `, CFG ${a.cfgScale}` : ''}`,
    );
    log(
      `spent: ${a.blockEvaluations.toFixed(1)} block evaluations per image (${a.ditStepEquivalents.toFixed(2)} DiT-step equivalents${a.budget !== null ? ` of a budget of ${a.budget}` : ''}), ${(a.flops / 1e9).toFixed(3)} GFLOPs in all, ${a.seconds.toFixed(2)} s`,
    );
    if (a.residualPerStep)
      log(`fixed-point residual per step: ${a.residualPerStep.map((v) => v.toExponential(2)).join(' ')}`);
    log(`grid → ${o.out}${o.save ? `; samples → ${o.save}` : ''}`);
    return { account: a, out: o.out, saved: o.save ?? null, checkpointStep: ckpt.meta.step, backend: backend.name };
  } finally {
    model.dispose();
  }
}

export function register(program: Command, globals: () => GlobalOptions): void {
  const cmd = program
    .command('sample')
    .description('sample a trained checkpoint at a compute budget (DiT-step equivalents) and report what was spent')
    .requiredOption(
      '--ckpt <path>',
      'the --out directory of a train command, or a checkpoint file of the reference training code (.pt; EMA weights)',
    )
    .option('--samples <count>', 'number of images', intArg('--samples', 1), 64)
    .option(
      '--budget <K>',
      'budget in DiT-step equivalents (depth·K block evaluations per image)',
      intArg('--budget', 1),
    )
    .option(
      '--steps <n>',
      'sampling steps (FPDM: the split of the budget with this many; it must spend the budget exactly)',
      intArg('--steps', 1),
    )
    .option('--iters <n>', 'FPDM: fixed-point iterations per step (picks the split)', intArg('--iters', 1))
    .addOption(
      new Option('--allocation <kind>', 'FPDM: spread of the iterations over the steps (default fixed)').choices([
        ...ALLOCATIONS,
      ]),
    )
    .option('--tolerance <x>', 'FPDM tolerance allocation: residual threshold (default 1e-3)', numArg('--tolerance'))
    .option(
      '--max-iters-per-step <n>',
      'FPDM tolerance allocation: cap per step (default 3·iters)',
      intArg('--max-iters-per-step', 1),
    )
    .option('--reuse', "FPDM: start each step from the previous step's fixed point")
    .addOption(new Option('--sampler <name>', 'ddpm or ddim').choices(['ddpm', 'ddim']).default('ddpm'))
    .option('--eta <x>', 'DDIM eta (default 0)', numArg('--eta'))
    .option('--cfg <scale>', 'classifier-free guidance scale', numArg('--cfg'))
    .option('--seed <s>', 'seed (default 0)', intArg('--seed'))
    .requiredOption('--out <grid.png>', 'where to write the sample grid (PNG)')
    .option('--save <dir>', 'also write every sample as PNG and all as samples.safetensors')
    .option('--batch-size <n>', 'images per batch (default: all at once)', intArg('--batch-size', 1))
    .addOption(
      new Option('--labels <how>', 'class labels: random or cycle (0, 1, 2, …)')
        .choices(['random', 'cycle'])
        .default('random'),
    )
    .addOption(
      new Option('--entry <which>', 'weights to sample: ema or model').choices(['ema', 'model']).default('ema'),
    )
    .option('--json', 'print the accounting as JSON on stdout')
    // a checkpoint file of the reference training code (sample_reference.ts)
    .option(
      '--config <file>',
      'reference checkpoint: the constructor keyword arguments (JSON), when shapes and stored args do not say enough',
    )
    .option(
      '--vae <path>',
      'the SD VAE that decodes the latents of a latent model (diffusers folder, or ldm/diffusers weights)',
    )
    .option('--vae-config <file>', 'config.json of --vae when it is a bare diffusers file')
    .addOption(
      new Option('--vae-variant <name>', 'which SD VAE fine-tune --vae is (recorded with the result)').choices([
        'ema',
        'mse',
      ]),
    )
    .option('--npz <file>', 'with --vae: write the decoded samples as arr_0 uint8 [N, H, W, 3] (ADM evaluator layout)')
    .addOption(
      new Option(
        '--png-naming <style>',
        'with --vae: --save file names: fpdm ({idx:05d}--{y:03d}--{label}.png) or dit ({index:06d}.png)',
      ).choices(['fpdm', 'dit']),
    )
    .option('--label-names <file>', 'reference checkpoint: JSON list of class names for fpdm-style PNG names');
  addRenamedFlags(cmd, RENAMED_FLAGS.sample);
  cmd.action(async (opts: SampleCommandOptions & ReferenceSampleOptions) => {
    if (opts.budget === undefined && opts.steps === undefined)
      throw new UserError('give --budget K (DiT-step equivalents) or --steps (with --iters for FPDM)');
    if (existsSync(opts.ckpt) && statSync(opts.ckpt).isFile()) {
      const rr = await runReference(opts, globals());
      if (opts.json) emitJson(rr);
      return;
    }
    const r = await run(opts, globals());
    if (opts.json) emitJson(r);
  });
}
