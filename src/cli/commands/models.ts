// `fpdm-exp models [--json]`: every DiT preset and FPDM (pre/post 1, 2, 4) on it, with exact parameter
// counts (from the shape tree: nothing is allocated) and FLOPs by formula (see src/models/flops.ts).
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import {
  countParams,
  ditPreset,
  fpdmFrom,
  modelFlops,
  modelName,
  PRESET_NAMES,
  type ModelConfig,
} from '../../models/index.js';
import { emitJson } from '../../util/log.js';
import { formatTable } from '../table.js';

export interface ModelsOptions {
  inputSize?: number;
  inChannels?: number;
  numClasses?: number;
  learnSigma?: boolean;
  /** pre/post depths of the FPDM variants listed for every preset */
  fpdmDepths?: number[];
}

export interface ModelRow {
  /** 'DiT-XL/2' or 'FPDM(DiT-XL/2, pre=1, post=1)' (the keys of reference/param_counts.json) */
  name: string;
  kind: 'dit' | 'fpdm';
  /** trainable parameters, pos_embed buffer excluded */
  params: number;
  paramsByModule: Record<string, number>;
  /** matmul FLOPs per sample of one DiT block */
  flopsPerBlock: number;
  /** DiT: matmul FLOPs per sample of one forward pass; FPDM: at `matchedIterations` */
  flopsPerForward: number;
  /** FPDM: FLOPs outside the iterations (embedders, pre, injection, post, final) */
  flopsFixed: number;
  /** FPDM: FLOPs of one fixed-point iteration, fc1/fc2 projection included; DiT: 0 */
  flopsPerIteration: number;
  /** FPDM: the projection's share of flopsPerIteration */
  projectionFlopsPerIteration: number;
  /** FPDM: iterations that make pre + iters + post = the DiT's depth (one DiT-step equivalent) */
  matchedIterations: number | null;
  /** block evaluations of one forward (FPDM: at matchedIterations) */
  blockEvaluationsPerForward: number;
}

export function describe(c: ModelConfig): ModelRow {
  const count = countParams(c);
  const fl = modelFlops(c);
  const matched = c.kind === 'fpdm' ? Math.max(0, c.depth - c.preDepth - c.postDepth) : null;
  return {
    name: modelName(c),
    kind: c.kind,
    params: count.total,
    paramsByModule: count.byModule,
    flopsPerBlock: fl.perBlock,
    flopsPerForward: fl.forward(matched ?? 0),
    flopsFixed: fl.fixed,
    flopsPerIteration: fl.perIteration,
    projectionFlopsPerIteration: fl.projectionPerIteration,
    matchedIterations: matched,
    blockEvaluationsPerForward: c.kind === 'dit' ? c.depth : c.preDepth + matched! + c.postDepth,
  };
}

export function run(opts: ModelsOptions = {}): ModelRow[] {
  const rows: ModelRow[] = [];
  for (const name of PRESET_NAMES) {
    const dit = ditPreset(name, {
      inputSize: opts.inputSize,
      inChannels: opts.inChannels,
      numClasses: opts.numClasses,
      learnSigma: opts.learnSigma,
    });
    rows.push(describe(dit));
    for (const k of opts.fpdmDepths ?? [1, 2, 4]) rows.push(describe(fpdmFrom(dit, { preDepth: k, postDepth: k })));
  }
  return rows;
}

function posInt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('expected a positive integer');
  return n;
}

const fmtInt = (n: number): string => n.toLocaleString('en-US');
const gflops = (n: number): string => (n / 1e9).toFixed(2);

export function register(program: Command): void {
  program
    .command('models')
    .description(
      'list every DiT preset and FPDM variant (pre/post 1, 2, 4) with exact parameter counts and FLOPs per forward / per fixed-point iteration',
    )
    .option('--input-size <n>', 'latent size H = W', posInt, 32)
    .option('--in-channels <n>', 'latent channels', posInt, 4)
    .option('--num-classes <n>', 'number of classes', posInt, 1000)
    .option('--no-learn-sigma', 'output C channels instead of 2·C')
    .option('--json', 'print JSON on stdout')
    .action((o: { inputSize: number; inChannels: number; numClasses: number; learnSigma: boolean; json?: boolean }) => {
      const rows = run({
        inputSize: o.inputSize,
        inChannels: o.inChannels,
        numClasses: o.numClasses,
        learnSigma: o.learnSigma,
      });
      if (o.json) return emitJson(rows);
      process.stdout.write(
        formatTable(
          ['model', 'params', 'GFLOPs/forward', 'GFLOPs/iteration', 'block evals'],
          rows.map((r) => [
            r.name,
            fmtInt(r.params),
            r.kind === 'dit' ? gflops(r.flopsPerForward) : `${gflops(r.flopsPerForward)} (${r.matchedIterations} it)`,
            r.kind === 'dit' ? '-' : `${gflops(r.flopsPerIteration)} (proj ${gflops(r.projectionFlopsPerIteration)})`,
            r.blockEvaluationsPerForward,
          ]),
        ),
      );
      process.stdout.write(
        `\n${o.inputSize}x${o.inputSize}x${o.inChannels} latents, ${o.numClasses} classes, ${o.learnSigma ? 'learned' : 'fixed'} sigma. Params exclude the pos_embed buffer.\n` +
          'FLOPs per image: matmuls only, 2 per multiply-add; FPDM forward at the iterations that match the DiT depth in block evaluations.\n',
      );
    });
}
