// `fpdm-exp prdc REAL FAKE [--k 3] [--mode] [--weights] [--batch] [--json]`: improved precision and
// recall (plus density and coverage) of FAKE against REAL.
import type { Command } from 'commander';
import { featuresOf, LazyInception, type InputInfo } from '../../metrics/pipeline.js';
import { precisionRecall, type PrdcResult } from '../../metrics/prdc.js';
import type { PreprocessMode } from '../../metrics/preprocess.js';
import { UserError } from '../../util/errors.js';
import { emitJson } from '../../util/log.js';
import { useBackend, type GlobalOptions } from '../context.js';
import { modeOption, parseBatch } from './fid.js';
import { parsePositiveInt } from './kid.js';

export interface PrdcOptions {
  real: string;
  fake: string;
  k: number;
  mode: PreprocessMode;
  weights?: string;
  batch: number;
  globals: GlobalOptions;
}

export interface PrdcRunResult extends PrdcResult {
  metric: 'prdc';
  mode: PreprocessMode;
  inputs: InputInfo[];
}

export async function run(o: PrdcOptions): Promise<PrdcRunResult> {
  const net = new LazyInception(o.weights, () => useBackend(o.globals));
  try {
    const po = { mode: o.mode, batch: o.batch, net };
    const R = await featuresOf(o.real, po, 'precision/recall');
    const F = await featuresOf(o.fake, po, 'precision/recall');
    if (R.dim !== F.dim)
      throw new UserError(
        `'${o.real}' has ${R.dim}-d features and '${o.fake}' ${F.dim}-d: both must come from the same feature network`,
      );
    const r = precisionRecall(R.data, R.n, F.data, F.n, R.dim, o.k);
    return { metric: 'prdc', ...r, mode: o.mode, inputs: [R.info, F.info] };
  } finally {
    net.dispose();
  }
}

export function register(program: Command, globals: () => GlobalOptions): void {
  program
    .command('prdc')
    .description('precision / recall (k-NN, k=3) and density / coverage of generated images against real ones')
    .argument('<real>', 'image folder or .safetensors (images_uint8_nchw or features)')
    .argument('<fake>', 'the generated set')
    .option('--k <n>', 'nearest neighbour k', parsePositiveInt('--k'), 3)
    .addOption(modeOption())
    .option('--weights <file>', 'FID Inception weights; default: the cached file')
    .option('--batch <n>', 'images per forward pass', parseBatch, 50)
    .option('--json', 'print JSON on stdout')
    .action(
      async (
        real: string,
        fake: string,
        opts: { k: number; mode: PreprocessMode; weights?: string; batch: number; json?: boolean },
      ) => {
        const r = await run({ real, fake, ...opts, globals: globals() });
        if (opts.json) return emitJson(r);
        process.stdout.write(
          `precision ${r.precision}  recall ${r.recall}  density ${r.density}  coverage ${r.coverage}  (k=${r.k}, mode ${r.mode})\n`,
        );
      },
    );
}
