// `check`: the regression gate. A baseline file (JSON or YAML) lists checks: a metric, a selector of
// runs (experiment, model, kind, tags), the expected value, a tolerance (absolute and/or relative) and
// which direction is better. The value compared is the mean over seeds of the metric in the latest
// completed run per seed matching the selector. A value worse than expected by more than
//   allowed = max(abs, rel · |expected|)
// is a regression; `lower`/`higher` pass any improvement, `equal` fails a deviation either way. A check
// compares fp32 results unless its selector names another precision (`tags: {precision: mixed}`).
import { readFileSync } from 'node:fs';
import { extname } from 'node:path';
import YAML from 'yaml';
import { z } from 'zod';
import { UserError } from '../util/errors.js';
import { atomicWrite, requireFile } from '../util/fs.js';
import { openStore } from '../store/store.js';
import { MODEL_FAMILIES, RUN_KINDS, TAG } from '../store/names.js';
import type { MetricRecord, Tags } from '../store/types.js';
import { summarize } from './stats.js';

const tagValue = z.union([z.string(), z.number(), z.boolean(), z.null()]);

const CheckSchema = z
  .object({
    name: z.string().min(1).optional(),
    metric: z.string().min(1),
    select: z
      .object({
        experiment: z.string().min(1).optional(),
        model: z.string().min(1).optional(),
        family: z.enum(MODEL_FAMILIES).optional(),
        kind: z.enum(RUN_KINDS).optional(),
        /** a curve's step (e.g. the last training step); omitted: scalar rows only */
        step: z.number().int().optional(),
        tags: z.record(tagValue).optional(),
      })
      .strict()
      .default({}),
    expected: z.number().finite(),
    tolerance: z
      .object({ abs: z.number().nonnegative().finite().optional(), rel: z.number().nonnegative().finite().optional() })
      .strict()
      .refine((t) => t.abs !== undefined || t.rel !== undefined, { message: 'give abs and/or rel' }),
    better: z.enum(['lower', 'higher', 'equal']),
  })
  .strict();

const BaselineSchema = z.object({ version: z.literal(1).optional(), checks: z.array(CheckSchema).min(1) }).strict();

export type BaselineCheck = z.infer<typeof CheckSchema>;
export type Baseline = z.infer<typeof BaselineSchema>;

export type Verdict = 'ok' | 'improved' | 'regressed';

export interface CheckRow {
  name: string;
  metric: string;
  value: number;
  baseline: number;
  delta: number;
  /** largest allowed worsening */
  allowed: number;
  better: BaselineCheck['better'];
  verdict: Verdict;
  /** seeds averaged */
  n: number;
  runKeys: string[];
}

export interface CheckResult {
  baseline: string;
  db: string;
  rows: CheckRow[];
  regressions: CheckRow[];
  updated: boolean;
}

function issuePath(path: (string | number)[]): string {
  return (
    path.reduce<string>((acc, p) => (typeof p === 'number' ? `${acc}[${p}]` : acc ? `${acc}.${p}` : p), '') ||
    '(top level)'
  );
}

/** Reads and validates a baseline file; every problem is a UserError naming the offending key. */
export function readBaseline(path: string): { baseline: Baseline; format: 'json' | 'yaml'; text: string } {
  requireFile(path, 'baseline');
  const text = readFileSync(path, 'utf8');
  const format = /\.ya?ml$/i.test(extname(path)) ? 'yaml' : 'json';
  let raw: unknown;
  try {
    if (format === 'yaml') {
      const doc = YAML.parseDocument(text, { prettyErrors: true });
      if (doc.errors.length) throw new Error(doc.errors[0]!.message);
      raw = doc.toJS();
    } else raw = JSON.parse(text);
  } catch (e) {
    throw new UserError(`baseline ${path}: not valid ${format.toUpperCase()}: ${(e as Error).message}`);
  }
  const parsed = BaselineSchema.safeParse(raw);
  if (!parsed.success) {
    const first = parsed.error.issues[0]!;
    const extra = first.code === 'unrecognized_keys' ? ` (${first.keys.map((k) => `'${k}'`).join(', ')})` : '';
    throw new UserError(
      `baseline ${path}: ${issuePath(first.path)}: ${first.message}${extra}. A baseline is {checks: [{metric, select: {experiment?, model?, family?, kind?, step?, tags?}, expected, tolerance: {abs?, rel?}, better: lower|higher|equal}]}`,
    );
  }
  return { baseline: parsed.data, format, text };
}

const describe = (c: BaselineCheck): string =>
  c.name ??
  [
    c.metric,
    c.select.experiment,
    c.select.model,
    c.select.family,
    c.select.kind,
    ...Object.entries(c.select.tags ?? {}).map(([k, v]) => `${k}=${String(v)}`),
  ]
    .filter(Boolean)
    .join(' ');

function matches(r: MetricRecord, c: BaselineCheck): boolean {
  const s = c.select;
  if (r.name !== c.metric) return false;
  if (s.experiment !== undefined && r.experiment !== s.experiment) return false;
  if (s.model !== undefined && r.model !== s.model) return false;
  if (s.family !== undefined && r.family !== s.family) return false;
  if (s.kind !== undefined && r.kind !== s.kind) return false;
  if ((s.step ?? null) !== r.step) return false;
  // rows without a precision tag computed at fp32; a check that names no precision compares fp32 rows
  // only, so results at another precision are never pooled into a baseline measured at fp32
  const tags = { [TAG.precision]: 'fp32', ...s.tags };
  for (const [k, v] of Object.entries(tags))
    if ((k === TAG.precision ? (r.tags[k] ?? 'fp32') : (r.tags as Tags)[k]) !== v) return false;
  return Number.isFinite(r.value);
}

/** The compared value: mean over seeds of the latest completed matching run per seed. */
export function currentValue(
  rows: MetricRecord[],
  c: BaselineCheck,
  i: number,
): { value: number; n: number; runKeys: string[] } {
  const latest = new Map<string, MetricRecord>();
  for (const r of rows) {
    if (!matches(r, c)) continue;
    const seed = String(r.tags.seed ?? r.seed ?? 'none');
    const have = latest.get(seed);
    if (
      !have ||
      (r.finishedAt ?? '') > (have.finishedAt ?? '') ||
      ((r.finishedAt ?? '') === (have.finishedAt ?? '') && r.runId > have.runId)
    )
      latest.set(seed, r);
  }
  if (!latest.size)
    throw new UserError(
      `baseline check checks[${i}] (${describe(c)}): no completed run in the database has this metric for this selector; run the experiment first or fix the selector`,
    );
  const picked = [...latest.values()];
  return { value: summarize(picked.map((r) => r.value)).mean, n: picked.length, runKeys: picked.map((r) => r.runKey) };
}

export function judge(value: number, c: BaselineCheck): { delta: number; allowed: number; verdict: Verdict } {
  const delta = value - c.expected;
  const allowed = Math.max(c.tolerance.abs ?? 0, (c.tolerance.rel ?? 0) * Math.abs(c.expected));
  const worse = c.better === 'lower' ? delta : c.better === 'higher' ? -delta : Math.abs(delta);
  const verdict: Verdict = worse > allowed ? 'regressed' : c.better !== 'equal' && -worse > allowed ? 'improved' : 'ok';
  return { delta, allowed, verdict };
}

export function runCheck(opts: { baseline: string; db: string; update?: boolean }): CheckResult {
  const { baseline, format, text } = readBaseline(opts.baseline);
  const store = openStore(opts.db, { readonly: true });
  let rows: CheckRow[];
  try {
    const metrics = store.metrics({ status: ['completed'], names: [...new Set(baseline.checks.map((c) => c.metric))] });
    rows = baseline.checks.map((c, i) => {
      const cur = currentValue(metrics, c, i);
      return {
        name: describe(c),
        metric: c.metric,
        value: cur.value,
        baseline: c.expected,
        better: c.better,
        n: cur.n,
        runKeys: cur.runKeys,
        ...judge(cur.value, c),
      };
    });
  } finally {
    store.close();
  }
  if (opts.update) {
    if (format === 'yaml') {
      // edit the document in place so comments and layout survive
      const doc = YAML.parseDocument(text);
      rows.forEach((r, i) => doc.setIn(['checks', i, 'expected'], r.value));
      atomicWrite(opts.baseline, [doc.toString()]);
    } else {
      const raw = JSON.parse(text) as { checks: Record<string, unknown>[] };
      rows.forEach((r, i) => (raw.checks[i]!.expected = r.value));
      atomicWrite(opts.baseline, [JSON.stringify(raw, null, 2) + '\n']);
    }
  }
  return {
    baseline: opts.baseline,
    db: opts.db,
    rows,
    regressions: rows.filter((r) => r.verdict === 'regressed'),
    updated: Boolean(opts.update),
  };
}
