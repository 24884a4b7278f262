// What one denoiser call of a sampling pass costs the host: the TF.js kernels it runs (by name) and the
// milliseconds the JavaScript thread spends recording it. Counts depend on the model's structure (its
// depth, FPDM's pre/post blocks and iterations), not on its widths or the device, so the trunk keeps
// DiT-S/2's depth (12 blocks; FPDM-S/2: 1 pre, 1 post, the rest iterations) while the latent (default
// 8×8, batch 2), the width (default D 64, 2 heads) and the classes (default 10) can be made small
// enough for a CPU Vulkan driver (SwiftShader) to run the passes in seconds.
//
//   kernels   engine kernel invocations (tf.profile's list: customGrad ops and kernels run inside
//             them each count), per denoiser call, by name
//   dispatches  webgpu: direct dispatches (src/backends/webgpu/raw.ts) per denoiser call, and how many
//             of them needed a new bind group (the others found theirs in the cache)
//   host ms   the sampler's call, which records every step without waiting for the device (no onStep,
//             FPDM's residuals read once at the end of the pass), divided by the steps: wall time, and
//             the CPU time of the JavaScript thread alone (Linux: /proc's schedstat, in ns, else its stat
//             in 10 ms ticks; a CPU Vulkan driver's own threads run the kernels meanwhile and are not in
//             it); median of `--repeats` passes after a warm-up pass (pipelines compiled, weights
//             uploaded). Compare numbers of one machine only.
//
// Usage: node --import tsx bench/sample-host.ts [--backend webgpu|wasm|cpu] [--input 8] [--batch 2]
//        [--hidden 64] [--heads 2] [--classes 10] [--budget 4] [--repeats 5] [--cases dit,fpdm,reuse]
//        [--sampler ddpm|ddim] [--cfg S]
import { readFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend, parseBackendChoice } from '../src/backends/index.js';
import { rawKernels } from '../src/backends/webgpu/raw.js';
import { diffusionConfig } from '../src/diffusion/process.js';
import { SAMPLERS, type Sampler, type SamplerName } from '../src/diffusion/samplers.js';
import { planModelSampling } from '../src/experiments/budget.js';
import { sampleAtBudget } from '../src/experiments/sampling.js';
import {
  createModel,
  ditPreset,
  fpdmFrom,
  validateConfig,
  type AnyModel,
  type ModelConfig,
} from '../src/models/index.js';

interface Args {
  backend: string;
  input: number;
  batch: number;
  hidden: number;
  heads: number;
  classes: number;
  budget: number;
  repeats: number;
  cases: string[];
  sampler: SamplerName;
  cfg: number | null;
}

function parse(argv: string[]): Args {
  const a: Args = {
    backend: 'webgpu',
    input: 8,
    batch: 2,
    hidden: 64,
    heads: 2,
    classes: 10,
    budget: 4,
    repeats: 5,
    cases: ['dit', 'fpdm', 'reuse'],
    sampler: 'ddpm',
    cfg: null,
  };
  for (let i = 0; i < argv.length; i += 2) {
    const v = argv[i + 1];
    if (v === undefined) throw new Error(`${argv[i]}: a value is missing`);
    switch (argv[i]) {
      case '--backend':
        a.backend = v;
        break;
      case '--input':
        a.input = Number(v);
        break;
      case '--batch':
        a.batch = Number(v);
        break;
      case '--hidden':
        a.hidden = Number(v);
        break;
      case '--heads':
        a.heads = Number(v);
        break;
      case '--classes':
        a.classes = Number(v);
        break;
      case '--budget':
        a.budget = Number(v);
        break;
      case '--repeats':
        a.repeats = Number(v);
        break;
      case '--cases':
        a.cases = v.split(',');
        break;
      case '--sampler':
        a.sampler = v as SamplerName;
        break;
      case '--cfg':
        a.cfg = Number(v);
        break;
      default:
        throw new Error(`unknown option ${argv[i]}`);
    }
  }
  return a;
}

const median = (v: number[]): number => [...v].sort((x, y) => x - y)[v.length >> 1]!;

/** CPU milliseconds of the JavaScript thread (user + system; Linux /proc), or NaN elsewhere. */
function mainThreadCpuMs(): number {
  try {
    // schedstat's first field: nanoseconds on the CPU (absent without the kernel's schedstats)
    const ns = Number(readFileSync(`/proc/self/task/${process.pid}/schedstat`, 'utf8').split(' ')[0]);
    if (Number.isFinite(ns)) return ns / 1e6;
  } catch {
    // no schedstat: the stat's ticks below
  }
  try {
    const stat = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // fields from the 3rd on
    return ((Number(f[11]) + Number(f[12])) * 1000) / 100; // utime + stime, in clock ticks of 10 ms
  } catch {
    return NaN;
  }
}

async function measure(a: Args, label: string, model: AnyModel, steps: number, reuse: boolean): Promise<void> {
  const diffusion = diffusionConfig();
  const plan = planModelSampling(model.config, { budget: a.budget, steps, diffusionSteps: diffusion.diffusionSteps });
  const record = { wall: 0, cpu: 0 };
  // the named sampler, timed: it returns once every step is recorded (nothing in it waits for the device)
  const timed: Sampler = async (denoiser, xT, process, options) => {
    const [w0, c0] = [performance.now(), mainThreadCpuMs()];
    const r = await SAMPLERS[a.sampler](denoiser, xT, process, options);
    record.wall = performance.now() - w0;
    record.cpu = mainThreadCpuMs() - c0;
    return r;
  };
  const opts = {
    model,
    diffusion,
    plan,
    n: a.batch,
    reuse,
    seed: 0,
    labels: 'cycle' as const,
    sampler: timed,
    cfgScale: a.cfg,
  };
  await sampleAtBudget(opts); // warm-up
  const prof = await tf.profile(async () => {
    await sampleAtBudget(opts);
    return [];
  });
  const byName = new Map<string, number>();
  for (const k of prof.kernels) byName.set(k.name, (byName.get(k.name) ?? 0) + 1);
  const wall: number[] = [];
  const cpu: number[] = [];
  const rk = rawKernels();
  const count = () => (rk ? rk.counters.dispatches : 0);
  const created = () => (rk ? rk.counters.bindGroupsCreated : 0);
  const [d0, b0] = [count(), created()];
  for (let i = 0; i < a.repeats; i++) {
    await sampleAtBudget(opts);
    wall.push(record.wall / plan.steps);
    cpu.push(record.cpu / plan.steps);
  }
  const calls = a.repeats * plan.steps;
  const dispatches = rk
    ? `; ${+((count() - d0) / calls).toFixed(2)} direct dispatches per call (new bind groups ${+((created() - b0) / calls).toFixed(2)})`
    : '';
  const list = (v: number[]) => v.map((m) => m.toFixed(2)).join(' ');
  const names = [...byName.entries()]
    .sort((x, y) => y[1] - x[1] || x[0].localeCompare(y[0]))
    .map(([n, c]) => `${n} ${+(c / plan.steps).toFixed(2)}`)
    .join(', ');
  console.log(
    `${label} (${plan.steps} steps${plan.iters !== null ? ` × ${plan.iters} iterations` : ''}): ` +
      `${+(prof.kernels.length / plan.steps).toFixed(2)} TF.js kernels per denoiser call${dispatches}; host ms per call: ` +
      `wall ${median(wall).toFixed(2)} (${list(wall)}), JS thread CPU ${median(cpu).toFixed(2)} (${list(cpu)})\n  ${names}`,
  );
}

const a = parse(process.argv.slice(2));
const info = await initBackend(parseBackendChoice(a.backend));
console.log(
  `backend ${info.name} (${JSON.stringify(info.device ?? null)}); S/2 depth, D ${a.hidden}, ${a.heads} heads, ` +
    `${a.classes} classes, latent ${a.input}×${a.input}×4, batch ${a.batch}, budget ${a.budget}, ${a.sampler}` +
    `${a.cfg !== null ? `, CFG ${a.cfg}` : ''}`,
);
const trunk = validateConfig({
  ...ditPreset('DiT-S/2', { inputSize: a.input, numClasses: a.classes, learnSigma: true }),
  hiddenSize: a.hidden,
  numHeads: a.heads,
});
const configs: Record<string, [string, ModelConfig, number, boolean]> = {
  dit: ['DiT-S/2', trunk, a.budget, false],
  fpdm: ['FPDM-S/2', fpdmFrom(trunk), a.budget, false],
  reuse: ['FPDM-S/2, reuse', fpdmFrom(trunk), 2 * a.budget, true],
};
for (const c of a.cases) {
  const entry = configs[c];
  if (!entry) throw new Error(`unknown case ${c} (dit, fpdm, reuse)`);
  const [label, cfg, steps, reuse] = entry;
  const model = createModel(cfg, `sample-host/${c}`);
  try {
    await measure(a, label, model, steps, reuse);
  } finally {
    model.dispose();
  }
}
