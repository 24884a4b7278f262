// The command registry: one plain list. Each command module exports `register(program, globals)`;
// it is imported only when its command runs (its imports — TF.js, sharp, SQLite — cost seconds), so
// `--help` and the cheap commands start fast. `term` and `summary` are what the top-level help shows
// for a command that is not loaded; tests/cli/help.test.ts checks them against each module.
import type { Command } from 'commander';
import type { GlobalOptions } from '../context.js';

export type Register = (program: Command, globals: () => GlobalOptions) => void;

export interface CommandEntry {
  /** the command's name on the command line */
  name: string;
  /** its usage term in the top-level help (name, `[options]`, arguments) */
  term: string;
  /** its description */
  summary: string;
  load: () => Promise<{ register: Register }>;
}

export const COMMANDS: readonly CommandEntry[] = [
  {
    name: 'backends',
    term: 'backends [options]',
    summary: 'list the compute backends (wasm, cpu, webgpu, tensorflow), whether each is usable here, and why not',
    load: () => import('./backends.js'),
  },
  {
    name: 'plan',
    term: 'plan [options] <spec>',
    summary: 'validate a spec and print its runs, keys, status in the database and estimated cost, without computing',
    load: () => import('./plan.js'),
  },
  {
    name: 'run',
    term: 'run [options] <spec>',
    summary: 'plan, train, sample, measure and store the runs of an experiment spec; print a summary table',
    load: () => import('./run.js'),
  },
  {
    name: 'collect',
    term: 'collect [options] <bundles...>',
    summary: 'merge result bundles (databases written by `run --shard i/n`) into one database',
    load: () => import('./collect.js'),
  },
  {
    name: 'inspect',
    term: 'inspect [options] <file>',
    summary:
      'list the tensors (name, dtype, shape) of a .safetensors, PyTorch .pt/.pth (zip or legacy), .npy or .npz file',
    load: () => import('./inspect.js'),
  },
  {
    name: 'models',
    term: 'models [options]',
    summary:
      'list every DiT preset and FPDM variant (pre/post 1, 2, 4) with exact parameter counts and FLOPs per forward / per fixed-point iteration',
    load: () => import('./models.js'),
  },
  {
    name: 'forward',
    term: 'forward [options]',
    summary:
      'evaluate a DiT/FPDM checkpoint on given inputs (x NCHW, t, y) and write the output, to check this port against PyTorch',
    load: () => import('./forward.js'),
  },
  {
    name: 'report',
    term: 'report [options]',
    summary: 'rebuild tables (Markdown, LaTeX, CSV), figures (SVG, PNG) and index.html from the results database',
    load: () => import('./report.js'),
  },
  {
    name: 'check',
    term: 'check [options]',
    summary: 'compare the latest runs with a baseline file; exit 3 on a regression beyond tolerance',
    load: () => import('./check.js'),
  },
  {
    name: 'train',
    term: 'train [options]',
    summary: 'train DiT or FPDM (S-JFB) with AdamW + EMA and resumable checkpoints; re-run the same command to resume',
    load: () => import('./train.js'),
  },
  {
    name: 'sample',
    term: 'sample [options]',
    summary: 'sample a trained checkpoint at a compute budget (DiT-step equivalents) and report what was spent',
    load: () => import('./sample.js'),
  },
  {
    name: 'data',
    term: 'data',
    summary: 'inspect datasets: mnist, mnist:<train|heldout|all>, synthetic, or an image folder',
    load: () => import('./data.js'),
  },
  {
    name: 'fid',
    term: 'fid [options] <A> [B]',
    summary: 'FID between two image sets (folders, images/features .safetensors, or .npz statistics), as pytorch-fid',
    load: () => import('./fid.js'),
  },
  {
    name: 'kid',
    term: 'kid [options] <A> <B>',
    summary: 'Kernel Inception Distance between two image sets or feature files (mean ± std over seeded subsets)',
    load: () => import('./kid.js'),
  },
  {
    name: 'prdc',
    term: 'prdc [options] <real> <fake>',
    summary: 'precision / recall (k-NN, k=3) and density / coverage of generated images against real ones',
    load: () => import('./prdc.js'),
  },
  {
    name: 'is',
    term: 'is [options] <images>',
    summary: 'Inception Score (10 contiguous splits, mean ± population std) of an image set',
    load: () => import('./is.js'),
  },
  {
    name: 'features',
    term: 'features [options]',
    summary:
      'FID Inception features (2048-d pool3; block means with --blocks; logits with --logits) of an image set, to a .safetensors',
    load: () => import('./features.js'),
  },
  {
    name: 'weights',
    term: 'weights',
    summary: 'pretrained weights the metrics need (the FID Inception network)',
    load: () => import('./weights.js'),
  },
  {
    name: 'vae',
    term: 'vae',
    summary: 'the SD VAE (AutoencoderKL kl-f8): evaluate it on given tensors, inspect weights',
    load: () => import('./vae.js'),
  },
  {
    name: 'latents',
    term: 'latents',
    summary: 'latent datasets: extract them from an image folder with the SD VAE, check them',
    load: () => import('./latents.js'),
  },
];
