// A YAML spec file kept with its node ranges, so that every validation error can name the path AND the
// line it concerns: `spec.yaml:12 sampling.budgets[1]: received -5, expected a positive integer; fix: …`.
import { readFileSync } from 'node:fs';
import { LineCounter, parseDocument, isMap, isPair, isScalar, type Document } from 'yaml';
import { UserError, isNodeError } from '../util/errors.js';
import { inputErrorOf } from '../util/input-errors.js';

export type PathSeg = string | number;

/** One problem found in a spec: where (path), what was received, what was expected, how to fix it. */
export interface SpecIssue {
  path: PathSeg[];
  message: string;
  /** explicit 1-based line (e.g. for grid entries); otherwise looked up from `path` */
  line?: number;
}

export interface SpecSource {
  /** file name as the user gave it (used in messages) */
  file: string;
  text: string;
  /** the parsed plain value (maps → objects) */
  value: unknown;
  doc: Document.Parsed;
  lines: LineCounter;
}

/** Reads and parses a YAML (or JSON) spec; syntax errors are UserErrors with file:line:col. */
export function readSpecSource(file: string): SpecSource {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    if (isNodeError(e, 'ENOENT'))
      throw new UserError(`spec file '${file}' does not exist: check the path (shipped specs are in experiments/)`);
    if (isNodeError(e, 'EISDIR'))
      throw new UserError(`spec '${file}' is a directory: give a YAML file such as experiments/quickstart.yaml`);
    throw e;
  }
  return parseSpecSource(file, text);
}

export function parseSpecSource(file: string, text: string): SpecSource {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true, merge: false });
  if (doc.errors.length > 0) {
    const msgs = doc.errors.slice(0, 5).map((e) => {
      const pos = e.linePos?.[0] ?? lines.linePos(e.pos[0]);
      const first = e.message.split('\n')[0];
      return `${file}:${pos.line}:${pos.col} YAML syntax error: ${first}`;
    });
    throw new UserError(
      `${msgs.join('\n')}\nfix: correct the YAML syntax at that line (indentation, a missing ':' or a stray quote are common causes)`,
    );
  }
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: 100 });
  } catch (e) {
    throw inputErrorOf(e, `spec '${file}'`) ?? e; // e.g. an alias bomb stopped by the YAML library
  }
  return { file, text, value, doc, lines };
}

/** 1-based line of the node at `path` (or of its nearest existing ancestor); for an unknown key, of that key. */
export function lineOf(src: SpecSource, path: PathSeg[], unknownKey?: string): number | undefined {
  let p = [...path];
  for (;;) {
    const node = p.length === 0 ? src.doc.contents : src.doc.getIn(p, true);
    if (node && typeof node === 'object') {
      if (unknownKey !== undefined && isMap(node)) {
        const pair = node.items.find((it) => isPair(it) && isScalar(it.key) && String(it.key.value) === unknownKey);
        const r = pair && isScalar(pair.key) ? pair.key.range : undefined;
        if (r) return src.lines.linePos(r[0]).line;
      }
      const range = (node as { range?: [number, number, number] }).range;
      if (range) return src.lines.linePos(range[0]).line;
    }
    if (p.length === 0) return undefined;
    p = p.slice(0, -1);
    unknownKey = undefined;
  }
}

/** `sampling.budgets[1]`, `models.fpdm.pre`, `grid["training.steps"][0]` */
export function formatPath(path: PathSeg[]): string {
  let s = '';
  for (const seg of path) {
    if (typeof seg === 'number') s += `[${seg}]`;
    else if (/^[A-Za-z_][A-Za-z0-9_-]*$/.test(seg)) s += s === '' ? seg : `.${seg}`;
    else s += `[${JSON.stringify(seg)}]`;
  }
  return s === '' ? '(top level)' : s;
}

/** A short rendering of a received value for messages. */
export function show(v: unknown): string {
  if (v === undefined) return 'nothing';
  const s = JSON.stringify(v);
  if (s === undefined) return String(v);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

/** Throws one UserError listing every issue as `file:line path: message`. */
export function throwIssues(src: SpecSource, issues: SpecIssue[]): never {
  const rendered = issues.slice(0, 12).map((i) => {
    const line = i.line ?? lineOf(src, i.path);
    return `${src.file}${line !== undefined ? `:${line}` : ''} ${formatPath(i.path)}: ${i.message}`;
  });
  if (issues.length > 12) rendered.push(`… and ${issues.length - 12} more`);
  const head = issues.length === 1 ? '' : `spec '${src.file}' has ${issues.length} problems:\n`;
  throw new UserError(head + rendered.join('\n'));
}

/** Levenshtein distance, for "did you mean" hints on unknown keys. */
export function closest(word: string, options: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const o of options) {
    const d = editDistance(word.toLowerCase(), o.toLowerCase());
    if (d < bestD) {
      bestD = d;
      best = o;
    }
  }
  return bestD <= Math.max(2, Math.floor(word.length / 3)) ? best : undefined;
}

function editDistance(a: string, b: string): number {
  const dp = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = dp[0]!;
    dp[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = dp[j]!;
      dp[j] = Math.min(dp[j]! + 1, dp[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return dp[b.length]!;
}
