// `fpdm-exp latents extract --vae PATH --images FOLDER --out DIR [--name imagenet256] [--image-size 256]
//    [--hflip random|none] [--posterior sample|mean] [--seed 0] [--batch 8]`
//   turns an image folder into a latent dataset the official FPDM/fast-DiT training reads
//   (DIR/<name>_features/<i>.npy, DIR/<name>_labels/<i>.npy) plus DIR/latents.json; re-running resumes.
// `fpdm-exp latents info DIR [--name N]` checks a latent folder (pairs, shapes, labels) and prints it.
import type { Command } from 'commander';
import { InvalidArgumentError, Option } from 'commander';
import { scanLatentFolder } from '../../data/latents.js';
import { emitJson, log } from '../../util/log.js';
import { extractLatents, type ExtractOptions, type ExtractResult } from '../../vae/extract.js';
import { useBackend, type GlobalOptions } from '../context.js';

export async function runExtract(o: ExtractOptions, g: GlobalOptions): Promise<ExtractResult & { backend: string }> {
  const backend = await useBackend(g);
  const r = await extractLatents(o, backend.name);
  log(
    `${r.resumed ? 'resumed: ' : ''}wrote ${r.written} of ${r.count} latents (1, ${r.shape.slice(1).join(', ')}) to ${r.out}/${r.name}_features and ${r.name}_labels in ${r.seconds.toFixed(1)} s (${backend.name})`,
  );
  return { ...r, backend: backend.name };
}

export interface LatentsInfo {
  path: string;
  name: string;
  count: number;
  shape: number[];
  numClasses: number;
  fingerprint: string;
}

export function info(path: string, name?: string): LatentsInfo {
  const lf = scanLatentFolder(path, name);
  const numClasses = lf.labels.reduce((m, v) => Math.max(m, v + 1), 0);
  return {
    path,
    name: lf.name,
    count: lf.files.length,
    shape: [1, ...lf.shape],
    numClasses,
    fingerprint: lf.fingerprint,
  };
}

function posInt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('expected an integer >= 1');
  return n;
}
function nonNegInt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('expected an integer >= 0');
  return n;
}

export function register(program: Command, globals: () => GlobalOptions): void {
  const cmd = program
    .command('latents')
    .description('latent datasets: extract them from an image folder with the SD VAE, check them');
  cmd
    .command('extract')
    .description(
      'image folder (class sub-folders) → <name>_features/<i>.npy float32 (1,4,h,w) + <name>_labels/<i>.npy int64 (1,), as the reference training reads; resumable',
    )
    .requiredOption(
      '--vae <path>',
      'a diffusers folder, a diffusers .safetensors (with --config), or an ldm .safetensors/.ckpt',
    )
    .option('--config <file>', "VAE config.json (default: the folder's, else inferred from shapes with 32 groups)")
    .requiredOption(
      '--images <folder>',
      'image folder: one sub-folder per class (sorted names → labels) or a flat folder (label 0)',
    )
    .requiredOption('--out <dir>', 'output folder (created; re-running the same command resumes)')
    .option('--name <name>', 'dataset name of the two folders (default imagenet256, what the reference reads)')
    .option('--image-size <n>', 'ADM center-crop size (default 256)', posInt)
    .addOption(
      new Option(
        '--hflip <mode>',
        'horizontal flip with p = 1/2 per image, frozen at extraction as the reference (random), or none',
      ).choices(['random', 'none']),
    )
    .addOption(
      new Option('--posterior <mode>', 'one posterior draw as the reference (sample), or its mean').choices([
        'sample',
        'mean',
      ]),
    )
    .option('--seed <n>', 'seed of the flips and posterior draws (default 0)', nonNegInt)
    .option('--batch <n>', 'images per VAE pass (default 8)', posInt)
    .addOption(new Option('--progress <mode>', 'progress display').choices(['auto', 'bar', 'plain', 'none']))
    .option('--json', 'print a JSON summary on stdout')
    .action(async (o: ExtractOptions & { json?: boolean }) => {
      const r = await runExtract(o, globals());
      if (o.json) emitJson(r);
    });
  cmd
    .command('info')
    .description(
      'check a latent folder (features and labels paired by file name, one shape, int64 labels) and print its size and fingerprint',
    )
    .argument('<dir>', 'folder holding <name>_features/ and <name>_labels/')
    .option('--name <name>', 'which <name>_features when the folder holds several')
    .option('--json', 'print JSON on stdout')
    .action((dir: string, o: { name?: string; json?: boolean }) => {
      const r = info(dir, o.name);
      if (o.json) return emitJson(r);
      log(
        `${r.path}: ${r.count} latents '${r.name}' of shape (${r.shape.join(', ')}), ${r.numClasses} classes, fingerprint ${r.fingerprint.slice(0, 16)}…`,
      );
    });
}
