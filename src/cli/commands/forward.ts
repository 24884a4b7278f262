// `fpdm-exp forward --ckpt W --config CONFIG.json --inputs IO.safetensors --out OUT.safetensors
//   [--iters N] [--reuse] [--entry ema|model] [--tol T --max-iters M [--anderson --window m --beta b]]`
// Evaluates a model on given inputs so a user can check this port against PyTorch:
//   x [N, C, H, W] float, t [N] (int or float timesteps), y [N] int labels → `out` [N, Co, H, W] float32.
// With --reuse (FPDM): reuse_x1/reuse_t1 then reuse_x2/reuse_t2 (labels reuse_y1/reuse_y2, else y),
// the second call starting its fixed-point iteration from the first call's solution → reuse_out1/2.
import type { Command } from 'commander';
import { InvalidArgumentError, Option } from 'commander';
import * as tf from '@tensorflow/tfjs-core';
import { getTensor, f32, toFloat32, toFloat64, type HostTensor, type TensorMap } from '../../io/tensor.js';
import { readSafetensors, writeSafetensors } from '../../io/safetensors.js';
import { UserError } from '../../util/errors.js';
import { prepareFileTarget, requireFile } from '../../util/fs.js';
import { checkShape } from '../../util/shapes.js';
import { emitJson, log } from '../../util/log.js';
import {
  checkLabels,
  modelName,
  type FixedPointState,
  type SolveReport,
  type SolverOptions,
} from '../../models/index.js';
import { loadModel, readModelConfig } from '../../models/load.js';
import { useBackend, type GlobalOptions } from '../context.js';

export interface ForwardCommandOptions {
  ckpt: string;
  config: string;
  inputs: string;
  out: string;
  /** FPDM: fixed iteration count (default: the config's noGrad max + withGrad max) */
  iters?: number;
  reuse?: boolean;
  entry?: 'ema' | 'model';
  /** FPDM: stop at this relative residual instead of a fixed count (cap: maxIters) */
  tol?: number;
  maxIters?: number;
  anderson?: boolean;
  window?: number;
  beta?: number;
}

export interface ForwardCommandResult {
  model: string;
  out: string;
  /** names written to `out` */
  tensors: string[];
  /** FPDM: one solve report per evaluated call */
  solves: SolveReport[];
  backend: string;
}

function solverOf(o: ForwardCommandOptions): SolverOptions | undefined {
  if (o.anderson || o.tol !== undefined) {
    if (o.iters !== undefined)
      throw new UserError(
        '--iters (a fixed count) cannot be combined with --tol/--anderson; use --max-iters for the cap',
      );
    const tol = o.tol ?? 1e-4;
    const maxIters = o.maxIters ?? 100;
    return o.anderson
      ? { kind: 'anderson', tol, maxIters, window: o.window, beta: o.beta }
      : { kind: 'tolerance', tol, maxIters };
  }
  if (o.iters !== undefined) return { kind: 'fixed', iters: o.iters };
  return undefined;
}

function labels(t: HostTensor, name: string): Int32Array {
  const v = toFloat64(t);
  const out = new Int32Array(v.length);
  for (let i = 0; i < v.length; i++) {
    if (!Number.isInteger(v[i])) throw new UserError(`input '${name}' holds ${v[i]}: labels must be integers`);
    out[i] = v[i]!;
  }
  return out;
}

export async function run(o: ForwardCommandOptions, g: GlobalOptions): Promise<ForwardCommandResult> {
  const config = readModelConfig(o.config);
  requireFile(o.inputs, 'inputs file');
  prepareFileTarget(o.out, '--out file', { createDir: false });
  const backend = await useBackend(g);
  if (config.kind === 'dit' && (o.reuse || o.iters !== undefined || o.tol !== undefined || o.anderson)) {
    throw new UserError('--iters/--reuse/--tol/--anderson apply to FPDM only: the config has no "fixed_point": true');
  }
  const solver = solverOf(o);
  const io = readSafetensors(o.inputs).tensors;
  const src = `inputs file '${o.inputs}'`;
  const { model } = loadModel(o.ckpt, config, { entry: o.entry });
  const result: TensorMap = new Map();
  const solves: SolveReport[] = [];
  const evalOne = async (
    xName: string,
    tName: string,
    yName: string,
    state?: FixedPointState,
  ): Promise<FixedPointState | undefined> => {
    const xh = getTensor(io, xName, src);
    const th = getTensor(io, tName, src);
    const yv = labels(getTensor(io, yName, src), yName);
    checkLabels(config, yv);
    checkShape(`${src}: input '${xName}' (NCHW)`, xh.shape, [
      -1,
      config.inChannels,
      config.inputSize,
      config.inputSize,
    ]);
    checkShape(`${src}: timesteps '${tName}'`, th.shape, [xh.shape[0]!]);
    checkShape(`${src}: labels '${yName}'`, [yv.length], [xh.shape[0]!]);
    const x = tf.tensor4d(toFloat32(xh), xh.shape as [number, number, number, number]);
    const t = tf.tensor1d(toFloat32(th));
    const y = tf.tensor1d(yv, 'int32');
    try {
      const r = await model.forwardAsync(x, t, y, { solver, state });
      let out: Float32Array;
      try {
        out = (await r.out.data()) as Float32Array;
      } finally {
        r.out.dispose();
      }
      result.set(xName === 'x' ? 'out' : xName.replace('_x', '_out'), f32(r.out.shape, out.slice()));
      if (r.solve) solves.push(r.solve);
      return r.state;
    } finally {
      tf.dispose([x, t, y]);
    }
  };
  try {
    if (o.reuse) {
      const y1 = io.has('reuse_y1') ? 'reuse_y1' : 'y';
      const y2 = io.has('reuse_y2') ? 'reuse_y2' : 'y';
      const s1 = await evalOne('reuse_x1', 'reuse_t1', y1);
      const s2 = await evalOne('reuse_x2', 'reuse_t2', y2, s1);
      tf.dispose([s1?.z, s2?.z].filter((z): z is tf.Tensor3D => z !== undefined));
    } else {
      const s = await evalOne('x', 't', 'y');
      s?.z.dispose();
    }
  } finally {
    model.dispose();
  }
  writeSafetensors(o.out, result, { model: modelName(config), backend: backend.name });
  for (const [i, s] of solves.entries())
    log(
      `solve ${i + 1}: ${s.solver}, ${s.iterations} iterations, last residual ${s.residuals.at(-1)?.toExponential(3) ?? '-'}`,
    );
  log(`wrote ${[...result.keys()].join(', ')} to ${o.out}`);
  return { model: modelName(config), out: o.out, tensors: [...result.keys()], solves, backend: backend.name };
}

function nonNegInt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('expected an integer >= 0');
  return n;
}
function posNum(v: string): number {
  const n = Number(v);
  if (!(n > 0)) throw new InvalidArgumentError('expected a positive number');
  return n;
}

export function register(program: Command, globals: () => GlobalOptions): void {
  program
    .command('forward')
    .description(
      'evaluate a DiT/FPDM checkpoint on given inputs (x NCHW, t, y) and write the output, to check this port against PyTorch',
    )
    .requiredOption('--ckpt <file>', 'weights: .safetensors, .pt (zip or legacy), or a training checkpoint')
    .requiredOption(
      '--config <file>',
      "JSON of the reference constructor's keyword arguments (input_size, hidden_size, fixed_point, …)",
    )
    .requiredOption(
      '--inputs <file>',
      'safetensors with x [N,C,H,W], t [N], y [N] (with --reuse: reuse_x1, reuse_t1, reuse_x2, reuse_t2)',
    )
    .requiredOption('--out <file>', 'safetensors to write (out, or reuse_out1/reuse_out2)')
    .option(
      '--iters <n>',
      'FPDM: fixed-point iterations (default: no-grad max + with-grad max of the config)',
      nonNegInt,
    )
    .option('--reuse', 'FPDM: evaluate reuse_x1 then reuse_x2, carrying the fixed-point solution over')
    .addOption(new Option('--entry <name>', 'state_dict of a training checkpoint').choices(['ema', 'model']))
    .option('--tol <x>', 'FPDM: iterate until the relative residual is below x (instead of --iters)', posNum)
    .option('--max-iters <n>', 'FPDM: cap for --tol/--anderson (default 100)', nonNegInt)
    .option('--anderson', 'FPDM: Anderson acceleration (stops at --tol, default 1e-4)')
    .option('--window <m>', 'Anderson window (default 5)', nonNegInt)
    .option('--beta <b>', 'Anderson damping (default 1)', posNum)
    .option('--json', 'print a JSON summary on stdout')
    .action(async (o: ForwardCommandOptions & { json?: boolean }) => {
      const r = await run(o, globals());
      if (o.json) emitJson(r);
    });
}
