// `fpdm-exp is IMAGES [--splits 10] [--mode] [--weights] [--batch] [--json]`: Inception Score from the
// FID Inception network's 1008-class logits (images, or a features file written with --logits).
import type { Command } from 'commander';
import { inceptionScoreFromLogits, type InceptionScoreResult } from '../../metrics/inception_score.js';
import { LazyInception, logitsOf, type InputInfo } from '../../metrics/pipeline.js';
import type { PreprocessMode } from '../../metrics/preprocess.js';
import { emitJson } from '../../util/log.js';
import { useBackend, type GlobalOptions } from '../context.js';
import { modeOption, parseBatch } from './fid.js';
import { parsePositiveInt } from './kid.js';

export interface IsOptions {
  input: string;
  splits: number;
  mode: PreprocessMode;
  weights?: string;
  batch: number;
  globals: GlobalOptions;
}

export interface IsRunResult extends InceptionScoreResult {
  metric: 'is';
  mode: PreprocessMode;
  inputs: InputInfo[];
}

export async function run(o: IsOptions): Promise<IsRunResult> {
  const net = new LazyInception(o.weights, () => useBackend(o.globals));
  try {
    const L = await logitsOf(o.input, { mode: o.mode, batch: o.batch, net });
    const r = inceptionScoreFromLogits(L.data, L.n, L.classes, o.splits);
    return { metric: 'is', ...r, mode: o.mode, inputs: [L.info] };
  } finally {
    net.dispose();
  }
}

export function register(program: Command, globals: () => GlobalOptions): void {
  program
    .command('is')
    .description('Inception Score (10 contiguous splits, mean ± population std) of an image set')
    .argument('<images>', 'image folder, images .safetensors, or features .safetensors with logits')
    .option('--splits <n>', 'number of contiguous splits', parsePositiveInt('--splits'), 10)
    .addOption(modeOption())
    .option('--weights <file>', 'FID Inception weights; default: the cached file')
    .option('--batch <n>', 'images per forward pass', parseBatch, 50)
    .option('--json', 'print JSON on stdout')
    .action(
      async (
        input: string,
        opts: { splits: number; mode: PreprocessMode; weights?: string; batch: number; json?: boolean },
      ) => {
        const r = await run({ input, ...opts, globals: globals() });
        if (opts.json) return emitJson(r);
        process.stdout.write(`IS: ${r.mean} ± ${r.std} (${r.splits} splits, mode ${r.mode})\n`);
      },
    );
}
