// Short model labels for figures and tables. Model names as the runner stores them can be long
// ("FPDM(DiT(D=64, depth=4, heads=4, P=4), pre=1, post=1)") and are cut off in bar axes and legends;
// the report draws a short label instead and defines every label once, in the "Models" table.
import { TAG, type ModelFamily } from '../store/names.js';
import type { Tags } from '../store/types.js';

/** Names up to this many characters are their own label (preset names such as 'FPDM-XL/2'). */
export const SHORT_NAME = 16;

export interface ModelLabel {
  label: string;
  model: string;
  family: ModelFamily | null;
}

const FAMILY_NAME: Record<ModelFamily, string> = { dit: 'DiT', fpdm: 'FPDM' };

/**
 * One label per model name: the name itself when short, else its family ('DiT', 'FPDM'), numbered
 * ('FPDM 1', 'FPDM 2', in name order) where a family has several long names. Labels are unique.
 */
export function modelLabels(models: { model: string; family: ModelFamily | null }[]): Map<string, ModelLabel> {
  const byName = new Map<string, ModelFamily | null>();
  for (const m of models) if (!byName.has(m.model) || byName.get(m.model) === null) byName.set(m.model, m.family);
  const names = [...byName.keys()].sort();
  const taken = new Set(names.filter((n) => n.length <= SHORT_NAME));
  const out = new Map<string, ModelLabel>();
  const longByStem = new Map<string, string[]>();
  for (const n of names) {
    if (n.length <= SHORT_NAME) {
      out.set(n, { label: n, model: n, family: byName.get(n) ?? null });
      continue;
    }
    const f = byName.get(n) ?? null;
    const stem = f ? FAMILY_NAME[f] : 'model';
    (longByStem.get(stem) ?? longByStem.set(stem, []).get(stem)!).push(n);
  }
  for (const [stem, list] of longByStem) {
    let i = 0;
    for (const n of list) {
      let label = list.length === 1 && !taken.has(stem) ? stem : `${stem} ${++i}`;
      while (taken.has(label)) label = `${stem} ${++i}`;
      taken.add(label);
      out.set(n, { label, model: n, family: byName.get(n) ?? null });
    }
  }
  return out;
}

/**
 * The label of a model's results at the precision its run's tags name: ' [mixed]' appended where the
 * run was not fp32, so fp32 and mixed results of one model are apart in every table and figure (as
 * two models are), and fp32 labels are what they were before precisions existed.
 */
export function precisionLabel(label: string, tags: Tags): string {
  const p = tags[TAG.precision];
  return p === undefined || p === null || p === 'fp32' ? label : `${label} [${String(p)}]`;
}

/** A label of precisionLabel split into the model's label and the precision ('fp32' where none is named). */
export function splitPrecisionLabel(label: string): { base: string; precision: string } {
  const m = /^(.*) \[([A-Za-z0-9]+)\]$/.exec(label);
  return m ? { base: m[1]!, precision: m[2]! } : { base: label, precision: 'fp32' };
}

/** The tags without the precision (which precisionLabel moved into the label). */
export function withoutPrecision(tags: Tags): Tags {
  if (!(TAG.precision in tags)) return tags;
  const { [TAG.precision]: _p, ...rest } = tags;
  return rest;
}
