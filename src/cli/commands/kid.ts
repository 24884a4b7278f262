// `fpdm-exp kid A B [--subsets 100] [--subset-size 1000] [--seed 0] [--mode] [--weights] [--batch] [--json]`
// KID (polynomial kernel, unbiased MMD², mean ± std over seeded subsets) between two image sets or feature files.
import type { Command } from 'commander';
import { kernelInceptionDistance, type KidResult } from '../../metrics/kid.js';
import { featuresOf, LazyInception, type InputInfo } from '../../metrics/pipeline.js';
import type { PreprocessMode } from '../../metrics/preprocess.js';
import { UserError } from '../../util/errors.js';
import { emitJson } from '../../util/log.js';
import { useBackend, type GlobalOptions } from '../context.js';
import { modeOption, parseBatch } from './fid.js';

export interface KidOptions {
  a: string;
  b: string;
  mode: PreprocessMode;
  weights?: string;
  batch: number;
  subsets: number;
  subsetSize: number;
  seed: number;
  globals: GlobalOptions;
}

export interface KidRunResult extends KidResult {
  metric: 'kid';
  mode: PreprocessMode;
  seed: number;
  inputs: InputInfo[];
}

export function parsePositiveInt(flag: string): (s: string) => number {
  return (s) => {
    const n = Number(s);
    if (!Number.isInteger(n) || n < 1) throw new UserError(`${flag}: '${s}' is not a positive integer`);
    return n;
  };
}

export function parseSeed(s: string): number {
  const n = Number(s);
  if (!Number.isInteger(n) || n < 0) throw new UserError(`--seed: '${s}' is not a non-negative integer`);
  return n;
}

export async function run(o: KidOptions): Promise<KidRunResult> {
  const net = new LazyInception(o.weights, () => useBackend(o.globals));
  try {
    const po = { mode: o.mode, batch: o.batch, net };
    const A = await featuresOf(o.a, po, 'KID');
    const B = await featuresOf(o.b, po, 'KID');
    if (A.dim !== B.dim)
      throw new UserError(
        `'${o.a}' has ${A.dim}-d features and '${o.b}' ${B.dim}-d: both must come from the same feature network`,
      );
    const r = kernelInceptionDistance(A.data, A.n, B.data, B.n, A.dim, {
      subsets: o.subsets,
      subsetSize: o.subsetSize,
      seed: o.seed,
    });
    return { metric: 'kid', ...r, mode: o.mode, seed: o.seed, inputs: [A.info, B.info] };
  } finally {
    net.dispose();
  }
}

export function register(program: Command, globals: () => GlobalOptions): void {
  program
    .command('kid')
    .description('Kernel Inception Distance between two image sets or feature files (mean ± std over seeded subsets)')
    .argument('<A>', 'image folder or .safetensors (images_uint8_nchw or features)')
    .argument('<B>', 'the second set')
    .addOption(modeOption())
    .option('--weights <file>', 'FID Inception weights; default: the cached file')
    .option('--batch <n>', 'images per forward pass', parseBatch, 50)
    .option('--subsets <n>', 'number of subsets', parsePositiveInt('--subsets'), 100)
    .option(
      '--subset-size <n>',
      'samples per subset (clipped to the smaller set)',
      parsePositiveInt('--subset-size'),
      1000,
    )
    .option('--seed <n>', 'seed of the subset draw', parseSeed, 0)
    .option('--json', 'print JSON on stdout')
    .action(
      async (
        a: string,
        b: string,
        opts: {
          mode: PreprocessMode;
          weights?: string;
          batch: number;
          subsets: number;
          subsetSize: number;
          seed: number;
          json?: boolean;
        },
      ) => {
        const r = await run({ a, b, ...opts, globals: globals() });
        if (opts.json) return emitJson(r);
        process.stdout.write(
          `KID: ${r.mean} ± ${r.std} (${r.subsets} subsets of ${r.subsetSize}, seed ${r.seed}, mode ${r.mode})\n`,
        );
      },
    );
}
