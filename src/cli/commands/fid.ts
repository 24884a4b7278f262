// `fpdm-exp fid A [B] [--mode pytorch-fid|tf] [--weights FILE] [--batch 50] [--save-stats OUT.npz] [--no-cache] [--json]`
// A and B: image folders, images/features .safetensors, or .npz statistics (mu, sigma). With only A,
// computes A's statistics (use with --save-stats, like pytorch-fid's --save-stats).
import { Option, type Command } from 'commander';
import { activeBackend, type BackendInfo } from '../../backends/index.js';
import { frechetDetails } from '../../metrics/fid.js';
import { LazyInception, statsOf, type InputInfo } from '../../metrics/pipeline.js';
import { PREPROCESS_MODES, parsePreprocessMode, type PreprocessMode } from '../../metrics/preprocess.js';
import { writeStatsNpz } from '../../metrics/stats_io.js';
import { existsSync } from 'node:fs';
import { UserError } from '../../util/errors.js';
import { prepareFileTarget, requireFile } from '../../util/fs.js';
import { emitJson, log, warn } from '../../util/log.js';
import { useBackend, type GlobalOptions } from '../context.js';

export interface FidOptions {
  a: string;
  b?: string;
  mode: PreprocessMode;
  weights?: string;
  batch: number;
  saveStats?: string;
  cache: boolean;
  globals: GlobalOptions;
}

export interface FidResult {
  metric: 'fid';
  /** the Fréchet distance (FID when both sides are Inception pool3 features); absent with only A */
  value?: number;
  mode: PreprocessMode;
  inputs: InputInfo[];
  parts?: { meanTerm: number; covTerm: number; traceSqrt: number; usedEpsFallback: boolean };
  savedStats?: string;
  weights?: string;
  backend?: Pick<BackendInfo, 'name' | 'version' | 'device'>;
}

export function parseBatch(s: string): number {
  const n = Number(s);
  if (!Number.isInteger(n) || n < 1) throw new UserError(`--batch: '${s}' is not a positive integer`);
  return n;
}

export async function run(o: FidOptions): Promise<FidResult> {
  // the paths first: a wrong --save-stats or --weights path must not cost the feature extraction
  if (o.saveStats !== undefined) prepareFileTarget(o.saveStats, '--save-stats file', { createDir: false });
  if (o.weights !== undefined) requireFile(o.weights, 'weights file (--weights)');
  for (const input of [o.a, o.b])
    if (input !== undefined && !existsSync(input))
      throw new UserError(
        `'${input}' does not exist: pass an image folder, an .npz of statistics or a .safetensors of features or images`,
      );
  const net = new LazyInception(o.weights, () => useBackend(o.globals));
  try {
    const po = { mode: o.mode, batch: o.batch, net, cache: o.cache };
    const A = await statsOf(o.a, po);
    if (o.saveStats) {
      writeStatsNpz(o.saveStats, A.stats);
      log(`wrote the statistics of ${o.a} to ${o.saveStats}`);
    }
    const result: FidResult = { metric: 'fid', mode: o.mode, inputs: [A.info], savedStats: o.saveStats };
    if (o.b !== undefined) {
      const B = await statsOf(o.b, po);
      result.inputs.push(B.info);
      if (A.stats.dim !== B.stats.dim) {
        throw new UserError(
          `'${o.a}' has ${A.stats.dim}-d statistics and '${o.b}' ${B.stats.dim}-d: both must come from the same feature network`,
        );
      }
      const modes = new Set(result.inputs.map((i) => i.mode).filter((m) => m !== 'unknown'));
      if (modes.size > 1)
        warn(
          `the two inputs were computed with different preprocessing modes (${[...modes].join(' vs ')}): the FID mixes conventions`,
        );
      const d = frechetDetails(A.stats.mu, A.stats.sigma, B.stats.mu, B.stats.sigma);
      result.value = d.value;
      result.parts = {
        meanTerm: d.meanTerm,
        covTerm: d.covTerm,
        traceSqrt: d.traceSqrt,
        usedEpsFallback: d.usedEpsFallback,
      };
    } else if (!o.saveStats) {
      throw new UserError('fid needs two inputs A B (or one input with --save-stats OUT.npz to write its statistics)');
    }
    if (net.weightsPath) result.weights = net.weightsPath;
    if (net.loaded) {
      // a backend ran the network only when some statistics were computed (not all from the cache)
      const b = activeBackend();
      result.backend = { name: b.name, version: b.version, device: b.device };
    }
    return result;
  } finally {
    net.dispose();
  }
}

export function modeOption(): Option {
  return new Option(
    '--mode <mode>',
    `preprocessing: ${PREPROCESS_MODES.join(' | ')} (tf = TF1 resize and (p-128)/128, as the ADM evaluator)`,
  )
    .default('pytorch-fid')
    .argParser(parsePreprocessMode);
}

export function register(program: Command, globals: () => GlobalOptions): void {
  program
    .command('fid')
    .description(
      'FID between two image sets (folders, images/features .safetensors, or .npz statistics), as pytorch-fid',
    )
    .argument(
      '<A>',
      'image folder, .safetensors (images_uint8_nchw or features), .npz of statistics (mu, sigma; also ADM reference batches) or .npz of samples (arr_0 uint8 [N,H,W,3])',
    )
    .argument('[B]', 'the second set, same kinds as A')
    .addOption(modeOption())
    .option(
      '--weights <file>',
      'FID Inception weights (pt_inception-2015-12-05-6726825d.pth or a safetensors copy); default: the cached file',
    )
    .option('--batch <n>', 'images per forward pass', parseBatch, 50)
    .option('--save-stats <out.npz>', "write A's statistics (mu, sigma) as a pytorch-fid compatible .npz")
    .option('--no-cache', 'do not read or write the reference-statistics cache')
    .option('--json', 'print JSON on stdout')
    .action(
      async (
        a: string,
        b: string | undefined,
        opts: {
          mode: PreprocessMode;
          weights?: string;
          batch: number;
          saveStats?: string;
          cache: boolean;
          json?: boolean;
        },
      ) => {
        const r = await run({
          a,
          b,
          mode: opts.mode,
          weights: opts.weights,
          batch: opts.batch,
          saveStats: opts.saveStats,
          cache: opts.cache,
          globals: globals(),
        });
        if (opts.json) return emitJson(r);
        if (r.value !== undefined)
          process.stdout.write(
            `FID: ${r.value} (mode ${r.mode}; ${r.inputs.map((i) => `${i.path}: ${i.kind}${i.n ? `, N=${i.n}` : ''}${i.mode !== r.mode ? `, mode ${i.mode}` : ''}`).join('; ')})\n`,
          );
        if (r.savedStats) process.stdout.write(`statistics of ${a} written to ${r.savedStats}\n`);
      },
    );
}
