// Interleaved A/B of sampling variants in one process, on one model: each variant is a set of environment
// assignments (the FPDM_* switches, read where the kernels are planned), run in turn for --rounds rounds so
// that the GPU's drift between calls (NOTES §17, §19) falls on every variant alike. Per variant and round:
// one profiled pass (per-family GPU ms from timestamp queries, one pass per dispatch) and one timed pass
// (wall ms, and where it went on the host: until the sampler's last step was recorded, until x_0 was read,
// until the residuals were read). Medians over the rounds, per denoiser call. Every variant is warmed up
// once before round 1 (pipelines compiled), and every variant's x_0 is compared with the first variant's.
//
//   node scripts/gpu/sample-ab.mjs [--size XL|S] [--case fpdm|reuse|dit] [--budget 2] [--batch 32]
//        [--rounds 3] [--precision mixed|fp32] [--out FILE.json]
//        --variants 'name:VAR=v,VAR=v;name2:VAR=v'   (a variant with no assignment: 'base:')
import { writeFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../src/backends/index.js';
import { diffusionConfig } from '../../src/diffusion/process.js';
import { planModelSampling } from '../../src/experiments/budget.js';
import { sampleAtBudget } from '../../src/experiments/sampling.js';
import { createModel, ditPreset, fpdmFrom, type ModelConfig } from '../../src/models/index.js';
import { UserError } from '../../src/util/errors.js';
import { gitCommit } from '../../src/util/version.js';
import { startKernelProfile } from '../../bench/profile.js';

interface Variant {
  name: string;
  env: Array<[string, string]>;
}

interface Args {
  size: 'S' | 'XL';
  kase: 'fpdm' | 'reuse' | 'dit';
  budget: number;
  batch: number;
  rounds: number;
  precision: 'mixed' | 'fp32';
  variants: Variant[];
  out: string | null;
}

export function parseVariants(s: string): Variant[] {
  const out = s
    .split(';')
    .filter((v) => v.trim() !== '')
    .map((v) => {
      const at = v.indexOf(':');
      if (at < 1) throw new UserError(`--variants: '${v}' is not name:VAR=v,VAR=v`);
      const env = v
        .slice(at + 1)
        .split(',')
        .filter((x) => x.trim() !== '')
        .map((x): [string, string] => {
          const m = /^\s*([A-Z_][A-Z0-9_]*)=(.*)$/.exec(x);
          if (!m) throw new UserError(`--variants: '${x}' is not VAR=value`);
          return [m[1]!, m[2]!.trim()];
        });
      return { name: v.slice(0, at).trim(), env };
    });
  if (out.length === 0) throw new UserError('--variants: no variant given');
  return out;
}

function parse(argv: string[]): Args {
  const a: Args = {
    size: 'XL',
    kase: 'fpdm',
    budget: 2,
    batch: 32,
    rounds: 3,
    precision: 'mixed',
    variants: [],
    out: null,
  };
  for (let i = 0; i < argv.length; i++) {
    const v = argv[i + 1];
    const need = (): string => {
      if (v === undefined) throw new UserError(`${argv[i]} needs a value`);
      i++;
      return v;
    };
    const int = (): number => {
      const n = Number(need());
      if (!Number.isInteger(n) || n < 1) throw new UserError(`${argv[i - 1]} needs a positive integer`);
      return n;
    };
    switch (argv[i]) {
      case '--size': {
        const s = need();
        if (s !== 'S' && s !== 'XL') throw new UserError('--size is S or XL');
        a.size = s;
        break;
      }
      case '--case': {
        const s = need();
        if (s !== 'fpdm' && s !== 'reuse' && s !== 'dit') throw new UserError('--case is fpdm, reuse or dit');
        a.kase = s;
        break;
      }
      case '--budget':
        a.budget = int();
        break;
      case '--batch':
        a.batch = int();
        break;
      case '--rounds':
        a.rounds = int();
        break;
      case '--precision': {
        const s = need();
        if (s !== 'mixed' && s !== 'fp32') throw new UserError('--precision is mixed or fp32');
        a.precision = s;
        break;
      }
      case '--variants':
        a.variants = parseVariants(need());
        break;
      case '--out':
        a.out = need();
        break;
      default:
        throw new UserError(`unknown option ${argv[i]}`);
    }
  }
  if (a.variants.length === 0) throw new UserError('--variants is required');
  return a;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((x, y) => x - y);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

function setEnv(v: Variant, all: Variant[]): void {
  for (const w of all) for (const [k] of w.env) delete process.env[k];
  for (const [k, x] of v.env) process.env[k] = x;
}

/** The host's marks of one pass: when each `data()` read was asked for and when it resolved. */
function watchReads(): { marks: Array<{ asked: number; done: number }>; stop: () => void } {
  const proto = tf.Tensor.prototype as unknown as { data: (...a: unknown[]) => Promise<unknown> };
  const orig = proto.data;
  const marks: Array<{ asked: number; done: number }> = [];
  proto.data = function (this: unknown, ...args: unknown[]) {
    const m = { asked: performance.now(), done: NaN };
    marks.push(m);
    return orig.apply(this, args).then((r) => {
      m.done = performance.now();
      return r;
    });
  };
  return { marks, stop: () => (proto.data = orig) };
}

async function main(): Promise<void> {
  const a = parse(process.argv.slice(2));
  await initBackend('webgpu', { precision: a.precision });
  const trunk = ditPreset(a.size === 'XL' ? 'DiT-XL/2' : 'DiT-S/2');
  const config: ModelConfig = a.kase === 'dit' ? trunk : fpdmFrom(trunk);
  const model = createModel(config, 0);
  const diffusion = diffusionConfig();
  const steps = a.kase === 'reuse' ? 2 * a.budget : a.budget;
  const plan = planModelSampling(model.config, { budget: a.budget, steps, diffusionSteps: diffusion.diffusionSteps });
  const opts = {
    model,
    diffusion,
    plan,
    n: a.batch,
    batchSize: a.batch,
    reuse: a.kase === 'reuse',
    seed: 0,
    labels: 'cycle' as const,
  };
  const x0: Float32Array[] = [];
  for (const v of a.variants) {
    setEnv(v, a.variants);
    x0.push((await sampleAtBudget(opts)).samples); // warm-up: pipelines, weights
  }
  type Row = {
    families: Map<string, number[]>;
    gpu: number[];
    wall: number[];
    recorded: number[];
    read: number[];
    flushed: number[];
  };
  const rows: Row[] = a.variants.map(() => ({
    families: new Map(),
    gpu: [],
    wall: [],
    recorded: [],
    read: [],
    flushed: [],
  }));
  for (let r = 0; r < a.rounds; r++) {
    for (const [vi, v] of a.variants.entries()) {
      setEnv(v, a.variants);
      const row = rows[vi]!;
      const prof = startKernelProfile();
      try {
        await sampleAtBudget(opts);
      } finally {
        prof.stop();
      }
      const k = await prof.collect();
      row.gpu.push((k.gpuMs ?? NaN) / steps);
      for (const f of k.top) {
        const xs = row.families.get(f.name) ?? [];
        xs.push(f.ms / steps);
        row.families.set(f.name, xs);
      }
      const w = watchReads();
      const t0 = performance.now();
      let res;
      try {
        res = await sampleAtBudget(opts);
      } finally {
        w.stop();
      }
      row.wall.push((res.account.seconds * 1000) / steps);
      const [first, last] = [w.marks[0], w.marks[w.marks.length - 1]];
      row.recorded.push(first ? first.asked - t0 : NaN);
      row.read.push(first ? first.done - t0 : NaN);
      row.flushed.push(last ? last.done - t0 : NaN);
    }
  }
  const names = [...new Set(rows.flatMap((r) => [...r.families.keys()]))];
  const fam = (r: Row, n: string) => median(r.families.get(n) ?? [0]);
  names.sort((x, y) => fam(rows[0]!, y) - fam(rows[0]!, x));
  const fmt = (x: number) => x.toFixed(3);
  const head = `| per call (ms) | ${a.variants.map((v) => v.name).join(' | ')} |`;
  const lines = [
    `# Interleaved sampling A/B: ${config.kind === 'fpdm' ? 'FPDM' : 'DiT'} ${a.size}/2 ${a.kase}, budget ${a.budget} (${steps} steps), batch ${a.batch}, ${a.precision}, ${a.rounds} rounds`,
    '',
    `- command: \`node scripts/gpu/sample-ab.mjs ${process.argv
      .slice(2)
      .map((x) => (/[\s;]/.test(x) ? `'${x}'` : x))
      .join(' ')}\``,
    `- git commit: ${gitCommit() ?? 'unknown'}`,
    ...a.variants.map((v) => `- ${v.name}: ${v.env.map(([k, x]) => `${k}=${x}`).join(', ') || '(defaults)'}`),
    '',
    head,
    `| --- | ${a.variants.map(() => '---').join(' | ')} |`,
    `| wall per call | ${rows.map((r) => fmt(median(r.wall))).join(' | ')} |`,
    `| GPU per call (profiled pass) | ${rows.map((r) => fmt(median(r.gpu))).join(' | ')} |`,
    `| pass: last step recorded (ms from start) | ${rows.map((r) => fmt(median(r.recorded))).join(' | ')} |`,
    `| pass: x_0 read | ${rows.map((r) => fmt(median(r.read))).join(' | ')} |`,
    `| pass: residuals read | ${rows.map((r) => fmt(median(r.flushed))).join(' | ')} |`,
    ...names.map((n) => `| ${n} | ${rows.map((r) => fmt(fam(r, n))).join(' | ')} |`),
    '',
    `x_0 against ${a.variants[0]!.name}: ${x0
      .map((x, i) => {
        let m = 0;
        let s = 0;
        for (let j = 0; j < x.length; j++) {
          m = Math.max(m, Math.abs(x[j]! - x0[0]![j]!));
          s = Math.max(s, Math.abs(x0[0]![j]!));
        }
        return `${a.variants[i]!.name} max |Δ| ${m.toExponential(2)} (max |x| ${s.toFixed(2)})`;
      })
      .join('; ')}`,
  ];
  console.log(lines.join('\n'));
  if (a.out)
    writeFileSync(
      a.out,
      JSON.stringify(
        {
          args: { ...a, variants: a.variants },
          rows: rows.map((r, i) => ({ variant: a.variants[i]!.name, ...r, families: Object.fromEntries(r.families) })),
        },
        null,
        1,
      ),
    );
  model.dispose();
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : String(e));
  process.exit(e instanceof UserError ? 2 : 1);
});
