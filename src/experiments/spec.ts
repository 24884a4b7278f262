// The experiment spec (YAML): schema (zod, strict), defaults, cross-field rules and the `grid:` of
// overrides. Validation happens once, here, at the boundary; everything past `loadSpec` trusts it.
//
//   name: quickstart
//   dataset:  { kind: mnist, imageSize: 8, limit: 2000 }
//   models:   { dit: { kind: dit, hiddenSize: 32, depth: 4, heads: 2, patchSize: 2 },
//               fpdm: { kind: fpdm, like: dit, pre: 1, post: 1 } }
//   training: { steps: 200, batchSize: 32, lr: 1e-3 }
//   sampling: { budgets: [5, 10], splits: [5, 10], allocation: fixed, reuse: [false, true] }
//   metrics:  [fd_mnist, params, memory, throughput]
//   seeds:    [0]
//   precision: [fp32, mixed]     (optional; default fp32; a list runs each, like seeds)
//   grid:     { training.steps: [100, 200] }
import { z } from 'zod';
import { PRECISIONS, type Precision } from '../backends/index.js';
import { ALLOCATIONS } from '../diffusion/budget.js';
import { PRESET_NAMES } from '../models/config.js';
import {
  datasetSchema,
  datasetShape,
  ditSchema,
  fpdmSchema,
  modelSchema,
  presetTrunk,
  RENAMED_KEYS,
  samplingSchema,
  trainingSchema,
  trainingIssues,
  datasetIssues,
  type Trunk,
} from './settings.js';
import {
  closest,
  readSpecSource,
  parseSpecSource,
  show,
  throwIssues,
  type PathSeg,
  type SpecIssue,
  type SpecSource,
} from './source.js';
import { specSamplingPlans } from './budget.js';
import { vaeSpecSchema } from '../vae/spec.js';

const posInt = z.number().int().positive();
const nonNegInt = z.number().int().nonnegative();

export { DATASET_KINDS, datasetShape, type Trunk } from './settings.js';
export const METRIC_CHOICES = [
  'fid',
  'kid',
  'prdc',
  'is',
  'fd_mnist',
  'kid_mnist',
  'params',
  'memory',
  'throughput',
] as const;
export type MetricChoice = (typeof METRIC_CHOICES)[number];

const metricOptionsSchema = z
  .object({
    fidMode: z.enum(['pytorch-fid', 'tf']).default('pytorch-fid'),
    /** Inception weights file (.pth or .safetensors); default: the cache of `weights fetch inception` */
    inceptionWeights: z.string().min(1).optional(),
    /** real images for the reference statistics (default: as many as samples) */
    referenceImages: posInt.optional(),
    kidSubsets: posInt.default(100),
    kidSubsetSize: posInt.default(1000),
    prdcK: posInt.default(3),
    /** sample grids saved per sampling run (0 = none) */
    gridImages: nonNegInt.default(16),
  })
  .strict();

export const specSchema = z
  .object({
    name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'expected a name of letters, digits, ".", "_" or "-"'),
    description: z.string().optional(),
    dataset: datasetSchema,
    /** the SD VAE that decodes samples of a latent dataset for metrics and grids */
    vae: vaeSpecSchema.optional(),
    models: z.record(
      z.string().regex(/^[A-Za-z][A-Za-z0-9_-]*$/, 'model names are letters, digits, "_" or "-"'),
      modelSchema,
    ),
    training: trainingSchema,
    sampling: samplingSchema,
    metrics: z.array(z.enum(METRIC_CHOICES)).min(1),
    metricOptions: metricOptionsSchema.default({}),
    seeds: z.array(nonNegInt).min(1),
    backend: z.enum(['auto', 'wasm', 'cpu', 'webgpu', 'tensorflow']).optional(),
    /**
     * the matmul precision of every run: fp32, or mixed (webgpu: f16 tensor-core matmuls with f32
     * accumulation); a list runs each, like seeds, with the precision in the run keys where it is not fp32
     */
    precision: z.union([z.enum(PRECISIONS), z.array(z.enum(PRECISIONS)).min(1)]).default('fp32'),
    grid: z.record(z.string(), z.array(z.unknown()).min(1)).default({}),
  })
  .strict();

export type Spec = z.output<typeof specSchema>;

/** The precisions a (variant) spec runs at, in the order it lists them. */
export function specPrecisions(s: Pick<Spec, 'precision'>): Precision[] {
  return [s.precision].flat();
}
export type DatasetSpec = z.output<typeof datasetSchema>;
export type TrainingSpec = z.output<typeof trainingSchema>;
export type MetricOptions = z.output<typeof metricOptionsSchema>;

/** One point of the grid: the overrides applied and the resulting (validated) spec. */
export interface SpecVariant {
  overrides: Record<string, unknown>;
  spec: Spec;
}

export interface LoadedSpec {
  file: string;
  /** the spec text as given (stored with the experiment) */
  text: string;
  base: Spec;
  variants: SpecVariant[];
}

/** Reads, validates and expands a spec file; every problem is a UserError with file, line and path. */
export function loadSpec(file: string): LoadedSpec {
  return validateSource(readSpecSource(file));
}

/** The same for spec text (tests, specs from a database). */
export function parseSpec(text: string, file = 'spec.yaml'): LoadedSpec {
  return validateSource(parseSpecSource(file, text));
}

const TOP_KEYS = Object.keys(specSchema.shape);

function validateSource(src: SpecSource): LoadedSpec {
  if (src.value === null || typeof src.value !== 'object' || Array.isArray(src.value)) {
    throwIssues(src, [
      {
        path: [],
        message: `received ${show(src.value)}, expected a YAML mapping with keys ${TOP_KEYS.join(', ')}; fix: start from experiments/quickstart.yaml`,
      },
    ]);
  }
  const base = checkSpec(src, src.value);
  const variants = expandGrid(src, src.value as Record<string, unknown>, base);
  return { file: src.file, text: src.text, base, variants };
}

/** zod + cross-field rules on one raw object; throws with every issue found. */
function checkSpec(src: SpecSource, raw: unknown, remap?: (i: SpecIssue) => SpecIssue): Spec {
  const renamed = renamedKeys(raw);
  if (renamed.length > 0) throwIssues(src, remap ? renamed.map(remap) : renamed);
  const r = specSchema.safeParse(raw);
  const issues: SpecIssue[] = r.success ? crossField(r.data) : r.error.issues.flatMap((i) => zodIssue(src, raw, i));
  if (issues.length > 0) throwIssues(src, remap ? issues.map(remap) : issues);
  return (r as { data: Spec }).data;
}

/** Keys that were renamed (RENAMED_KEYS), each with the message naming its new key. */
function renamedKeys(raw: unknown): SpecIssue[] {
  const out: SpecIssue[] = [];
  for (const [old, message] of Object.entries(RENAMED_KEYS)) {
    const segs = old.split('.');
    const v = valueAt(raw, segs.slice(0, -1));
    if (v !== null && typeof v === 'object' && segs[segs.length - 1]! in v) out.push({ path: segs, message });
  }
  return out;
}

function valueAt(raw: unknown, path: PathSeg[]): unknown {
  let v = raw;
  for (const seg of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<string | number, unknown>)[seg];
  }
  return v;
}

function zodIssue(src: SpecSource, raw: unknown, i: z.ZodIssue): SpecIssue[] {
  const path = i.path as PathSeg[];
  const got = valueAt(raw, path);
  switch (i.code) {
    case 'unrecognized_keys': {
      const known = knownKeysAt(path, raw);
      return i.keys.map((k) => {
        const guess = closest(k, known);
        return {
          path: [...path, k],
          message: `unknown key; expected one of ${known.join(', ')}; fix: ${guess ? `did you mean '${guess}'?` : 'remove it'}`,
        };
      });
    }
    case 'invalid_type':
      if (got === undefined)
        return [{ path, message: `is missing, expected ${i.expected}; fix: add '${String(path[path.length - 1])}'` }];
      return [{ path, message: `received ${show(got)} (${i.received}), expected ${i.expected}` }];
    case 'too_small':
      if (i.type === 'array')
        return [
          {
            path,
            message: `received ${show(got)}, expected a list with at least ${i.minimum} entr${i.minimum === 1 ? 'y' : 'ies'}`,
          },
        ];
      if (i.type === 'number') {
        const real = ['lr', 'gradClip', 'tolerance', 'mlpRatio'].includes(String(path[path.length - 1]));
        const what =
          i.minimum === 0 && !i.inclusive
            ? real
              ? 'a positive number'
              : 'a positive integer'
            : `a number ${i.inclusive ? '>=' : '>'} ${String(i.minimum)}`;
        return [{ path, message: `received ${show(got)}, expected ${what}` }];
      }
      return [{ path, message: `received ${show(got)}: ${i.message}` }];
    case 'too_big':
      return [
        {
          path,
          message: `received ${show(got)}, expected ${i.type === 'array' ? 'fewer entries' : `a value ${i.inclusive ? '<=' : '<'} ${String(i.maximum)}`}`,
        },
      ];
    case 'invalid_enum_value':
      return [
        {
          path,
          message: `received ${show(got)}, expected one of ${i.options.map(String).join(', ')}${typeof got === 'string' && closest(got, i.options.map(String)) ? `; fix: did you mean '${closest(got, i.options.map(String))}'?` : ''}`,
        },
      ];
    case 'invalid_literal':
      return [{ path, message: `received ${show(got)}, expected ${show(i.expected)}` }];
    case 'invalid_union_discriminator':
      return [{ path, message: `received ${show(got)}, expected one of ${i.options.map(String).join(', ')}` }];
    case 'invalid_union': {
      // report the branch that got furthest (the one whose issue paths are longest)
      const best = i.unionErrors.map((e) => e.issues).sort((a, b) => maxDepth(b) - maxDepth(a))[0];
      if (best && maxDepth(best) > path.length) return best.flatMap((x) => zodIssue(src, raw, x));
      const guess = path.join('.') === 'precision' && typeof got === 'string' ? closest(got, [...PRECISIONS]) : null;
      return [
        { path, message: `received ${show(got)}, ${unionHint(path)}${guess ? `; fix: did you mean '${guess}'?` : ''}` },
      ];
    }
    default:
      return [{ path, message: `received ${show(got)}: ${i.message}` }];
  }
}

const maxDepth = (issues: z.ZodIssue[]): number => Math.max(0, ...issues.map((x) => x.path.length));

function unionHint(path: PathSeg[]): string {
  const key = path.join('.');
  if (key === 'sampling.splits') return "expected 'auto' or a list of step counts such as [10, 20]";
  if (key === 'sampling.allocation') return `expected one of ${ALLOCATIONS.join(', ')} or a list of them`;
  if (key === 'sampling.reuse') return 'expected true, false or a list such as [false, true]';
  if (key === 'dataset.channels') return 'expected 1 or 3';
  if (key === 'precision') return `expected ${PRECISIONS.join(' or ')}, or a list of them such as [fp32, mixed]`;
  return 'expected another type (see experiments/quickstart.yaml)';
}

function knownKeysAt(path: PathSeg[], raw: unknown): string[] {
  const key = path.filter((p) => typeof p === 'string').join('.');
  if (path.length === 0) return TOP_KEYS;
  if (path[0] === 'models' && path.length === 2) {
    const kind = (valueAt(raw, path) as { kind?: string } | undefined)?.kind;
    return Object.keys((kind === 'fpdm' ? fpdmSchema : ditSchema).shape);
  }
  if (path[0] === 'models' && path[2] === 'sjfb') return ['noGrad', 'withGrad'];
  const shapes: Record<string, z.ZodRawShape> = {
    dataset: datasetSchema.shape,
    training: trainingSchema.shape,
    sampling: samplingSchema.shape,
    metricOptions: metricOptionsSchema.shape,
  };
  return Object.keys(shapes[key] ?? {});
}

// ---- cross-field rules -------------------------------------------------------------------------

/** The trunk of model `name` with presets and `like:` resolved (assumes crossField passed). */
export function resolveTrunk(spec: Spec, name: string, seen: string[] = []): Trunk {
  const m = spec.models[name]!;
  let base: Partial<Trunk> = {};
  if (m.like !== undefined) base = resolveTrunk(spec, m.like, [...seen, name]);
  if (m.preset !== undefined) base = { ...base, ...presetTrunk(m.preset)! };
  const pick = <K extends keyof Trunk>(k: K, v: Trunk[K] | undefined, dflt?: Trunk[K]): Trunk[K] =>
    (v ?? base[k] ?? dflt) as Trunk[K];
  return {
    hiddenSize: pick('hiddenSize', m.hiddenSize),
    depth: pick('depth', m.depth),
    heads: pick('heads', m.heads),
    patchSize: pick('patchSize', m.patchSize),
    mlpRatio: pick('mlpRatio', m.mlpRatio, 4),
    classDropout: pick('classDropout', m.classDropout, 0.1),
  };
}

function crossField(s: Spec): SpecIssue[] {
  const out: SpecIssue[] = [];
  const add = (path: PathSeg[], message: string) => out.push({ path, message });
  for (const i of precisionIssues(s)) add(i.path, i.message);
  const d = s.dataset;
  for (const i of datasetIssues(d)) add(i.path, i.message);
  if (d.kind === 'latents' && s.vae === undefined && s.metrics.some((m) => ['fid', 'kid', 'prdc', 'is'].includes(m)))
    add(
      ['vae'],
      `is missing; ${s.metrics.filter((m) => ['fid', 'kid', 'prdc', 'is'].includes(m)).join(', ')} on a latent dataset need its samples decoded to images; fix: add vae: {path: <the SD VAE>, variant: mse}`,
    );
  if (d.kind !== 'latents' && s.vae !== undefined)
    add(
      ['vae'],
      `is set, but the dataset is ${d.kind} (pixels): a VAE decodes latent datasets only; fix: remove it or use kind: latents`,
    );
  if (out.length > 0) return out;
  const shape = datasetShape(d);

  const names = Object.keys(s.models);
  if (names.length === 0)
    add(['models'], 'received an empty mapping, expected at least one model (a DiT baseline and/or FPDM variants)');
  for (const name of names) {
    const m = s.models[name]!;
    const at = (k: string): PathSeg[] => ['models', name, k];
    if (m.preset !== undefined && presetTrunk(m.preset) === null)
      add(at('preset'), `received ${show(m.preset)}, expected one of ${PRESET_NAMES.join(', ')}`);
    if (m.like !== undefined) {
      if (!(m.like in s.models))
        add(
          at('like'),
          `received ${show(m.like)}, expected the name of another model of this spec (${names.join(', ')})`,
        );
      else if (likeCycle(s, name))
        add(
          at('like'),
          `received ${show(m.like)}: the 'like' references form a cycle; fix: point one of them at a model with explicit sizes`,
        );
    }
    if (out.length > 0) continue;
    const t = resolveTrunk(s, name);
    for (const k of ['hiddenSize', 'depth', 'heads', 'patchSize'] as const) {
      if (t[k] === undefined) add(at(k), `is missing; give a preset ('DiT-S/2'), 'like: <model>' or an explicit ${k}`);
    }
    if (out.length > 0) continue;
    if (shape.imageSize % t.patchSize !== 0)
      add(
        at('patchSize'),
        `received ${t.patchSize}, but the image side ${shape.imageSize} is not divisible by it; fix: choose a patch size dividing ${shape.imageSize}`,
      );
    if (t.hiddenSize % t.heads !== 0)
      add(at('heads'), `received ${t.heads}, but hiddenSize ${t.hiddenSize} is not divisible by it`);
    if (t.hiddenSize % 4 !== 0)
      add(at('hiddenSize'), `received ${t.hiddenSize}, expected a multiple of 4 (2-D sin-cos position embedding)`);
    if (m.kind === 'fpdm') {
      if (m.pre + m.post >= t.depth)
        add(
          at('pre'),
          `pre ${m.pre} + post ${m.post} must be smaller than the depth ${t.depth} of the DiT it is compared with (a budget of 1 DiT step must leave at least one fixed-point iteration)`,
        );
      const [a, b] = m.sjfb.noGrad;
      const [c, dd] = m.sjfb.withGrad;
      if (a > b) add(['models', name, 'sjfb', 'noGrad'], `received [${a}, ${b}], expected [min, max] with min <= max`);
      if (c > dd)
        add(['models', name, 'sjfb', 'withGrad'], `received [${c}, ${dd}], expected [min, max] with min <= max`);
      if (dd < 1)
        add(
          ['models', name, 'sjfb', 'withGrad'],
          `received [${c}, ${dd}], expected at least one iteration with gradient (max >= 1)`,
        );
    }
  }

  const tr = s.training;
  for (const i of trainingIssues(tr)) add(i.path, i.message);

  const sp = s.sampling;
  sp.budgets.forEach((b, i) => {
    if (sp.budgets.indexOf(b) !== i) add(['sampling', 'budgets', i], `received ${b} twice; fix: list each budget once`);
  });
  const allocs = [sp.allocation].flat();
  if (sp.eta !== 0 && sp.sampler !== 'ddim')
    add(['sampling', 'eta'], `received ${sp.eta}, but eta is a DDIM setting; fix: remove it or use sampler: ddim`);
  if (sp.cfg > 1 && shape.classes < 2)
    add(
      ['sampling', 'cfg'],
      `received ${sp.cfg}, but classifier-free guidance needs class labels and the dataset is unconditional; fix: cfg: 1`,
    );
  if (sp.cfg > 1 && shape.classes >= 2) {
    for (const name of names) {
      if (s.models[name]!.classDropout === 0)
        add(
          ['models', name, 'classDropout'],
          `received 0, but sampling.cfg ${sp.cfg} needs a model trained with label dropout (the null class); fix: classDropout: 0.1 or cfg: 1`,
        );
    }
  }
  if (sp.batchSize > sp.samples)
    add(['sampling', 'batchSize'], `received ${sp.batchSize}, expected at most sampling.samples (${sp.samples})`);
  // every sampling plan of every model, made by the function the sampler's plans come from
  for (const name of names) {
    const m = s.models[name]!;
    if (out.length > 0) break;
    const t = resolveTrunk(s, name);
    const cost =
      m.kind === 'fpdm'
        ? { family: 'fpdm' as const, depth: t.depth, pre: m.pre, post: m.post }
        : { family: 'dit' as const, depth: t.depth, pre: 0, post: 0 };
    const { issues } = specSamplingPlans(cost, {
      budgets: sp.budgets,
      splits: sp.splits,
      allocations: allocs,
      tolerance: sp.tolerance,
      maxItersPerStep: sp.maxItersPerStep,
      diffusionSteps: tr.diffusionSteps,
    });
    for (const i of issues) add(i.path, `model '${name}': ${i.message}`);
  }

  for (const m of ['fd_mnist', 'kid_mnist'] as const) {
    if (s.metrics.includes(m) && d.kind !== 'mnist')
      add(
        ['metrics', s.metrics.indexOf(m)],
        `received "${m}", but that metric's classifier was trained on MNIST and the dataset is ${d.kind}; fix: use fid or kid`,
      );
  }
  s.metrics.forEach((m, i) => {
    if (s.metrics.indexOf(m) !== i) add(['metrics', i], `received ${show(m)} twice; fix: list each metric once`);
  });
  const dist = s.metrics.filter((m) => ['fid', 'kid', 'prdc', 'fd_mnist', 'kid_mnist'].includes(m));
  if (dist.length > 0 && sp.samples < 2)
    add(['sampling', 'samples'], `received ${sp.samples}, expected at least 2 to compute ${dist.join(', ')}`);
  s.seeds.forEach((v, i) => {
    if (s.seeds.indexOf(v) !== i) add(['seeds', i], `received ${v} twice; fix: list each seed once`);
  });
  return out;
}

/** Each precision listed once; mixed only where the backend can run it (webgpu, or auto on a GPU). */
function precisionIssues(s: Spec): SpecIssue[] {
  const out: SpecIssue[] = [];
  const list = specPrecisions(s);
  const at = (i: number): PathSeg[] => (Array.isArray(s.precision) ? ['precision', i] : ['precision']);
  list.forEach((p, i) => {
    if (list.indexOf(p) !== i)
      out.push({ path: at(i), message: `received ${show(p)} twice; fix: list each precision once` });
  });
  const mixed = list.indexOf('mixed');
  if (mixed >= 0 && s.backend !== undefined && s.backend !== 'auto' && s.backend !== 'webgpu')
    out.push({
      path: at(mixed),
      message: `received "mixed" with backend: ${s.backend}, but mixed precision (f16 tensor-core matmuls) runs on the webgpu backend only; fix: backend: webgpu (or no backend: auto picks webgpu where there is a GPU), or precision: fp32`,
    });
  return out;
}

function likeCycle(s: Spec, start: string): boolean {
  const seen = new Set<string>();
  let cur: string | undefined = start;
  while (cur !== undefined && s.models[cur]) {
    if (seen.has(cur)) return true;
    seen.add(cur);
    cur = s.models[cur]!.like;
  }
  return false;
}

// ---- grid expansion ----------------------------------------------------------------------------

const GRID_FORBIDDEN = new Set(['grid', 'name', 'description']);

/** Expands `grid:` (dotted paths → lists) into the cross product of overrides, validating each point. */
function expandGrid(src: SpecSource, raw: Record<string, unknown>, base: Spec): SpecVariant[] {
  const entries = Object.entries(base.grid);
  if (entries.length === 0) return [{ overrides: {}, spec: base }];
  const issues: SpecIssue[] = [];
  for (const [key, values] of entries) {
    const segs = key.split('.');
    if (segs.some((x) => x === '') || GRID_FORBIDDEN.has(segs[0]!)) {
      issues.push({
        path: ['grid', key],
        message: `is not a path that can be varied; expected a dotted path into the spec such as training.steps or models.fpdm.pre`,
      });
      continue;
    }
    if (!(segs[0]! in specSchema.shape)) {
      const guess = closest(segs[0]!, TOP_KEYS);
      issues.push({
        path: ['grid', key],
        message: `'${segs[0]}' is not a spec section; expected one of ${TOP_KEYS.filter((k) => !GRID_FORBIDDEN.has(k)).join(', ')}${guess ? `; fix: did you mean '${guess}'?` : ''}`,
      });
      continue;
    }
    if (segs[0] === 'models' && segs.length > 1 && !(segs[1]! in base.models)) {
      issues.push({
        path: ['grid', key],
        message: `model '${segs[1]}' is not in models (${Object.keys(base.models).join(', ')})`,
      });
      continue;
    }
    const seen: string[] = [];
    values.forEach((v, i) => {
      const c = JSON.stringify(v);
      if (seen.includes(c))
        issues.push({ path: ['grid', key, i], message: `received ${show(v)} twice; fix: list each value once` });
      seen.push(c);
    });
  }
  if (issues.length > 0) throwIssues(src, issues);

  let points: Record<string, unknown>[] = [{}];
  for (const [key, values] of entries) points = points.flatMap((p) => values.map((v) => ({ ...p, [key]: v })));
  return points.map((overrides) => {
    const variant = structuredClone(raw);
    delete variant.grid;
    for (const [key, v] of Object.entries(overrides)) setDotted(src, variant, key, v);
    const remap = (i: SpecIssue): SpecIssue => {
      for (const [key, v] of Object.entries(overrides)) {
        const segs = key.split('.');
        if (segs.every((sg, j) => String(i.path[j]) === sg)) {
          const idx = base.grid[key]!.findIndex((x) => JSON.stringify(x) === JSON.stringify(v));
          return {
            path: ['grid', key, idx],
            message: `(sets ${key}${i.path.length > segs.length ? ` → ${i.path.slice(segs.length).join('.')}` : ''}) ${i.message}`,
          };
        }
      }
      const where = Object.entries(overrides)
        .map(([k, v]) => `${k}=${show(v)}`)
        .join(', ');
      return { ...i, message: `${i.message} (at grid point ${where})` };
    };
    const spec = checkSpec(src, variant, remap);
    return { overrides, spec: { ...spec, grid: {} } };
  });
}

function setDotted(src: SpecSource, obj: Record<string, unknown>, key: string, value: unknown): void {
  const segs = key.split('.');
  let cur: Record<string, unknown> = obj;
  for (let i = 0; i < segs.length - 1; i++) {
    const next = cur[segs[i]!];
    if (next === undefined) cur[segs[i]!] = {};
    else if (next === null || typeof next !== 'object' || Array.isArray(next)) {
      throwIssues(src, [
        {
          path: ['grid', key],
          message: `'${segs.slice(0, i + 1).join('.')}' is ${show(next)}, not a mapping, so '${key}' cannot be set; fix: vary '${segs.slice(0, i + 1).join('.')}' itself`,
        },
      ]);
    }
    cur = cur[segs[i]!] as Record<string, unknown>;
  }
  cur[segs[segs.length - 1]!] = structuredClone(value);
}
