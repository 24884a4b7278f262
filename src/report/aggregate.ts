// Grouping metric rows into plotted points. Values are averaged over seeds only: rows whose other
// tags differ are never pooled. Within a series, tags that differ between groups at the same x are
// appended to the series label ("FPDM-S/2 (reuse=on)"), so every distinct configuration is its own line.
import { canonicalJson } from '../store/json.js';
import { TAG } from '../store/names.js';
import type { MetricRecord, TagValue, Tags } from '../store/types.js';
import { summarize, type Summary } from './stats.js';
import type { SeriesPoint } from './figures.js';

export interface AggSpec {
  /** the x of a row (undefined: row not used) */
  x: (r: MetricRecord) => number | string | undefined;
  /** the series a row belongs to before configuration splitting (default: its model label) */
  base?: (r: MetricRecord) => string;
  /** tag keys that the x and base already express (ignored when telling configurations apart) */
  consumed: string[];
}

export interface Agg extends Summary {
  series: string;
  x: number | string;
  /** the configuration: tags without seed and consumed keys, plus `model` */
  config: Tags;
  model: string;
  values: number[];
  /** the rows' runs (for provenance) */
  runIds: number[];
}

export function fmtTag(v: TagValue | undefined): string {
  if (typeof v === 'boolean') return v ? 'on' : 'off';
  if (v === null || v === undefined) return '–';
  return String(v);
}

export function aggregate(rows: MetricRecord[], spec: AggSpec): Agg[] {
  const drop = new Set([TAG.seed, ...spec.consumed]);
  const groups = new Map<
    string,
    { base: string; x: number | string; config: Tags; model: string; values: number[]; runIds: number[] }
  >();
  for (const r of rows) {
    const x = spec.x(r);
    if (x === undefined || !Number.isFinite(r.value)) continue;
    const config: Tags = { model: r.model };
    for (const [k, v] of Object.entries(r.tags)) if (!drop.has(k)) config[k] = v;
    const base = spec.base ? spec.base(r) : r.model;
    const key = `${base}\u0000${typeof x}:${x}\u0000${canonicalJson(config)}`;
    let g = groups.get(key);
    if (!g) groups.set(key, (g = { base, x, config, model: r.model, values: [], runIds: [] }));
    g.values.push(r.value);
    g.runIds.push(r.runId);
  }
  // per base: which config keys differ between groups sharing an x
  const split = new Map<string, Set<string>>();
  const byBaseX = new Map<string, Tags[]>();
  for (const g of groups.values()) {
    const k = `${g.base}\u0000${typeof g.x}:${g.x}`;
    (byBaseX.get(k) ?? byBaseX.set(k, []).get(k)!).push(g.config);
    if (!split.has(g.base)) split.set(g.base, new Set());
  }
  for (const [k, configs] of byBaseX) {
    const base = k.split('\u0000')[0]!;
    const keys = new Set(configs.flatMap((c) => Object.keys(c)));
    for (const key of keys)
      if (new Set(configs.map((c) => canonicalJson(c[key] ?? null))).size > 1) split.get(base)!.add(key);
  }
  const out: Agg[] = [];
  for (const g of groups.values()) {
    const keys = [...split.get(g.base)!].sort();
    const suffix = keys.map((k) => (k === 'model' ? g.model : `${k}=${fmtTag(g.config[k])}`)).join(', ');
    out.push({
      series: suffix ? `${g.base} (${suffix})` : g.base,
      x: g.x,
      config: g.config,
      model: g.model,
      values: g.values,
      runIds: g.runIds,
      ...summarize(g.values),
    });
  }
  return out.sort((a, b) => a.series.localeCompare(b.series) || cmpX(a.x, b.x));
}

export function cmpX(a: number | string, b: number | string): number {
  return typeof a === 'number' && typeof b === 'number'
    ? a - b
    : String(a).localeCompare(String(b), 'en', { numeric: true });
}

export function toPoints(aggs: Agg[], label?: (a: Agg) => string | undefined): SeriesPoint[] {
  return aggs.map((a) => {
    const s = a.std ?? 0;
    const p: SeriesPoint = { series: a.series, x: a.x, mean: a.mean, lo: a.mean - s, hi: a.mean + s, n: a.n };
    const l = label?.(a);
    if (l !== undefined) p.label = l;
    return p;
  });
}

/** Number-valued tag or undefined. */
export function numTag(r: MetricRecord, key: string): number | undefined {
  const v = r.tags[key];
  return typeof v === 'number' ? v : undefined;
}
