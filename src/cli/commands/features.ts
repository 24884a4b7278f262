// `fpdm-exp features --images IN --out OUT.safetensors [--weights FILE] [--mode] [--blocks] [--logits] [--batch]`
// Writes the FID Inception features of IN (an image folder or a safetensors with images_uint8_nchw):
// `features` F32 [N, 2048]; with --blocks `block0_64_spatial_mean` [N, 64], `block1_192_spatial_mean`
// [N, 192], `block2_768_spatial_mean` [N, 768]; with --logits `logits` [N, 1008]. The metadata records
// the preprocessing mode, the weights file and the backend.
import type { Command } from 'commander';
import { activeBackend } from '../../backends/index.js';
import { f32, type HostTensor } from '../../io/tensor.js';
import { writeSafetensors } from '../../io/safetensors.js';
import { classifyInput } from '../../metrics/inputs.js';
import { extractImages, LazyInception } from '../../metrics/pipeline.js';
import type { PreprocessMode } from '../../metrics/preprocess.js';
import { UserError } from '../../util/errors.js';
import { emitJson, log } from '../../util/log.js';
import { toolVersion } from '../../util/version.js';
import { useBackend, type GlobalOptions } from '../context.js';
import { modeOption, parseBatch } from './fid.js';
import { prepareFileTarget } from '../../util/fs.js';

export interface FeaturesOptions {
  images: string;
  out: string;
  weights?: string;
  mode: PreprocessMode;
  blocks: boolean;
  logits: boolean;
  batch: number;
  globals: GlobalOptions;
}

export interface FeaturesResult {
  out: string;
  n: number;
  mode: PreprocessMode;
  tensors: Record<string, number[]>;
  weights: string;
  backend: string;
}

export async function run(o: FeaturesOptions): Promise<FeaturesResult> {
  const kind = classifyInput(o.images);
  if (kind !== 'folder' && kind !== 'images')
    throw new UserError(
      `--images '${o.images}' must be an image folder or a .safetensors with images_uint8_nchw (it holds ${kind})`,
    );
  if (!o.out.endsWith('.safetensors')) throw new UserError(`--out '${o.out}' must end in .safetensors`);
  prepareFileTarget(o.out, '--out file', { createDir: false }); // before the features are computed
  const net = new LazyInception(o.weights, () => useBackend(o.globals));
  try {
    const fs = await extractImages(
      o.images,
      kind,
      { mode: o.mode, batch: o.batch, net },
      { blocks: o.blocks, logits: o.logits },
    );
    const n = fs.n;
    const t: Record<string, HostTensor> = { features: f32([n, 2048], fs.features) };
    if (o.blocks) {
      t.block0_64_spatial_mean = f32([n, 64], fs.block0!);
      t.block1_192_spatial_mean = f32([n, 192], fs.block1!);
      t.block2_768_spatial_mean = f32([n, 768], fs.block2!);
    }
    if (o.logits) t.logits = f32([n, 1008], fs.logits!);
    const b = activeBackend();
    writeSafetensors(o.out, t, {
      mode: o.mode,
      weights: net.weightsPath!,
      backend: `${b.name} ${b.version ?? ''}`.trim(),
      tool: `fpdm-exp ${toolVersion()}`,
    });
    log(`wrote ${Object.keys(t).join(', ')} of ${n} images to ${o.out}`);
    return {
      out: o.out,
      n,
      mode: o.mode,
      tensors: Object.fromEntries(Object.entries(t).map(([k, v]) => [k, v.shape])),
      weights: net.weightsPath!,
      backend: b.name,
    };
  } finally {
    net.dispose();
  }
}

export function register(program: Command, globals: () => GlobalOptions): void {
  program
    .command('features')
    .description(
      'FID Inception features (2048-d pool3; block means with --blocks; logits with --logits) of an image set, to a .safetensors',
    )
    .requiredOption('--images <in>', 'image folder or .safetensors with images_uint8_nchw [N, 3, H, W]')
    .requiredOption('--out <out.safetensors>', 'output file')
    .option('--weights <file>', 'FID Inception weights (.pth or safetensors copy); default: the cached file')
    .addOption(modeOption())
    .option('--blocks', 'also write the 64/192/768-channel block outputs averaged over space', false)
    .option('--logits', 'also write the 1008-class logits (for the Inception Score)', false)
    .option('--batch <n>', 'images per forward pass', parseBatch, 50)
    .option('--json', 'print JSON on stdout')
    .action(async (opts: Omit<FeaturesOptions, 'globals'> & { json?: boolean }) => {
      const r = await run({ ...opts, globals: globals() });
      if (opts.json) return emitJson(r);
      process.stdout.write(
        `${r.out}: ${Object.entries(r.tensors)
          .map(([k, s]) => `${k} [${s.join(', ')}]`)
          .join(', ')} (mode ${r.mode})\n`,
      );
    });
}
