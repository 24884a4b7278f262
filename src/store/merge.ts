// Merging result bundles (for `fpdm-exp collect`). A bundle is a directory holding a store database
// (written by a `run --shard i/n`) and the artifact files it points at. Merging copies every finished
// run of the source database into the destination, keyed by run key, so merging the same bundle twice
// changes nothing and the order of bundles does not matter (a completed run beats a failed one).
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { dirname, isAbsolute, relative, resolve } from 'node:path';
import { openStore, type Store } from './store.js';

/**
 * Which artifact files a merge copies beside the destination database (same path relative to it as
 * in the bundle), so the merged results stand without their bundles: `all`, `samples` (everything
 * but training checkpoints, which stay referenced in their bundle) or `none` (only references).
 */
export const ARTIFACT_COPY_MODES = ['all', 'samples', 'none'] as const;
export type ArtifactCopyMode = (typeof ARTIFACT_COPY_MODES)[number];

export interface MergeOptions {
  /** default 'none' */
  copyArtifacts?: ArtifactCopyMode;
}

export interface MergeResult {
  /** runs new to the destination */
  added: number;
  /** runs the destination had as failed/diverged/pending/running, replaced by a completed one */
  replaced: number;
  /** runs the destination already had in an equal or better state */
  skipped: number;
  /** runs of the source that never finished (pending or running): not merged */
  unfinished: number;
}

const FINISHED = new Set(['completed', 'failed', 'diverged']);

/**
 * Merges the database at `srcPath` into `dst` in one IMMEDIATE transaction. Artifact files selected by
 * `copyArtifacts` are copied beside the destination; the paths of the others are rewritten so they
 * point at the same files from the destination's directory.
 */
export function mergeDatabase(srcPath: string, dst: Store, opts: MergeOptions = {}): MergeResult {
  const copy = opts.copyArtifacts ?? 'none';
  const src = openStore(srcPath, { readonly: true });
  try {
    const result: MergeResult = { added: 0, replaced: 0, skipped: 0, unfinished: 0 };
    const db = dst.db;
    dst.write(() => {
      for (const e of src.experiments()) {
        const have = db.prepare('SELECT id, spec FROM experiments WHERE name = ?').get(e.name) as
          { id: number; spec: string } | undefined;
        if (!have)
          db.prepare('INSERT INTO experiments (name, spec, created_at) VALUES (?, ?, ?)').run(
            e.name,
            e.spec,
            e.createdAt,
          );
        else if (have.spec === '' && e.spec !== '')
          db.prepare('UPDATE experiments SET spec = ? WHERE id = ?').run(e.spec, have.id);
      }
      const srcRuns = src.db
        .prepare(
          'SELECT r.*, e.name AS experiment FROM runs r LEFT JOIN experiments e ON e.id = r.experiment_id ORDER BY r.id',
        )
        .all() as Record<string, unknown>[];
      for (const r of srcRuns) {
        if (!FINISHED.has(r.status as string)) {
          result.unfinished++;
          continue;
        }
        const have = db.prepare('SELECT id, status FROM runs WHERE run_key = ?').get(r.run_key) as
          { id: number; status: string } | undefined;
        if (have && (have.status === 'completed' || r.status !== 'completed')) {
          result.skipped++;
          continue;
        }
        if (have) db.prepare('DELETE FROM runs WHERE id = ?').run(have.id); // cascades to its metrics and artifacts
        const expId =
          r.experiment == null
            ? null
            : (db.prepare('SELECT id FROM experiments WHERE name = ?').get(r.experiment) as { id: number }).id;
        const id = Number(
          db
            .prepare(
              `INSERT INTO runs (run_key, experiment_id, kind, model, family, parent_key, status, seed, config, tags, provenance,
                 created_at, started_at, finished_at, heartbeat_at, attempts, error)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
            )
            .run(
              r.run_key,
              expId,
              r.kind,
              r.model,
              r.family,
              r.parent_key,
              r.status,
              r.seed,
              r.config,
              r.tags,
              r.provenance,
              r.created_at,
              r.started_at,
              r.finished_at,
              r.heartbeat_at,
              r.attempts,
              r.error,
            ).lastInsertRowid,
        );
        const metrics = src.db
          .prepare('SELECT name, value, unit, step, tags, nonfinite FROM metrics WHERE run_id = ? ORDER BY id')
          .all(r.id) as Record<string, unknown>[];
        const insM = db.prepare(
          'INSERT OR REPLACE INTO metrics (run_id, name, value, unit, step, tags, nonfinite) VALUES (?, ?, ?, ?, ?, ?, ?)',
        );
        for (const m of metrics) insM.run(id, m.name, m.value, m.unit, m.step, m.tags, m.nonfinite);
        const arts = src.db
          .prepare('SELECT kind, path, sha256, bytes, tags, created_at FROM artifacts WHERE run_id = ? ORDER BY id')
          .all(r.id) as Record<string, unknown>[];
        const insA = db.prepare(
          'INSERT OR REPLACE INTO artifacts (run_id, kind, path, sha256, bytes, tags, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
        );
        for (const a of arts) {
          const wanted = copy === 'all' || (copy === 'samples' && a.kind !== 'checkpoint');
          const path = wanted
            ? copyArtifact(a.path as string, src.dir, dst.dir)
            : rebase(a.path as string, src.dir, dst.dir);
          insA.run(id, a.kind, path, a.sha256, a.bytes, a.tags, a.created_at);
        }
        if (have) result.replaced++;
        else result.added++;
      }
    });
    return result;
  } finally {
    src.close();
  }
}

function rebase(p: string, fromDir: string, toDir: string): string {
  if (isAbsolute(p)) return p;
  const rel = relative(toDir, resolve(fromDir, p));
  return isAbsolute(rel) ? resolve(fromDir, p) : rel.split('\\').join('/');
}

/**
 * Copies an artifact of a bundle to the same relative place beside the destination database and
 * returns its new path; a file outside the bundle's directory (or already there, or missing) is
 * only referenced.
 */
function copyArtifact(p: string, fromDir: string, toDir: string): string {
  const rel = isAbsolute(p) ? relative(fromDir, p) : p;
  if (isAbsolute(rel) || rel.startsWith('..')) return rebase(p, fromDir, toDir);
  const from = resolve(fromDir, rel);
  const to = resolve(toDir, rel);
  if (from === to || !existsSync(from)) return rebase(p, fromDir, toDir);
  mkdirSync(dirname(to), { recursive: true });
  copyFileSync(from, to);
  return rel.split('\\').join('/');
}

// ---- shard coverage: which shards of a sharded experiment a set of bundles holds ----------------

/**
 * What a run of a `run --shard i/n` records about its shard, as `provenance.shard` (on its pending row
 * and again when claimed), so that `collect` can tell which shards a set of bundles lacks.
 */
export interface ShardRecord {
  index: number;
  count: number;
  /** train runs of the whole (unsharded) plan: a shard whose index is at least this is empty */
  trainRuns: number;
}

export interface ShardCoverage {
  experiment: string;
  /** n of `--shard i/n` */
  count: number;
  /** shards that hold runs (the others are empty: fewer train runs than shards) */
  expected: number;
  /** shards of which no database holds a run: never started, or their bundle was not given */
  missing: number[];
  /** shards with runs that are pending or running in every database that holds them (killed or still going) */
  unfinished: { index: number; runs: number }[];
}

function shardOf(provenance: unknown): ShardRecord | null {
  const s = (provenance as { shard?: Partial<ShardRecord> } | null)?.shard;
  if (!s || typeof s !== 'object') return null;
  const ok = [s.index, s.count, s.trainRuns].every((v) => Number.isInteger(v) && (v as number) >= 0);
  return ok && s.index! < s.count! ? { index: s.index!, count: s.count!, trainRuns: s.trainRuns! } : null;
}

/**
 * The shards recorded in the databases at `paths` (bundles, and the destination if it exists),
 * grouped by experiment and shard count. A run finished (completed, failed or diverged) in any of the
 * databases counts as finished (runs without a shard record count only for that).
 */
export function shardCoverage(paths: string[]): ShardCoverage[] {
  interface Group {
    experiment: string;
    count: number;
    trainRuns: number;
    present: Set<number>;
    runs: Map<string, { index: number; parent: string | null }>;
  }
  const groups = new Map<string, Group>();
  const finished = new Set<string>();
  const completed = new Set<string>();
  for (const path of paths) {
    const src = openStore(path, { readonly: true });
    try {
      const rows = src.db
        .prepare(
          'SELECT r.run_key, r.parent_key, r.status, r.provenance, e.name AS experiment FROM runs r LEFT JOIN experiments e ON e.id = r.experiment_id',
        )
        .all() as {
        run_key: string;
        parent_key: string | null;
        status: string;
        provenance: string;
        experiment: string | null;
      }[];
      for (const r of rows) {
        if (FINISHED.has(r.status)) finished.add(r.run_key);
        if (r.status === 'completed') completed.add(r.run_key);
        let prov: unknown;
        try {
          prov = JSON.parse(r.provenance);
        } catch {
          continue;
        }
        const shard = shardOf(prov);
        if (!shard) continue;
        const id = `${r.experiment ?? ''}\u0000${shard.count}`;
        let g = groups.get(id);
        if (!g)
          groups.set(
            id,
            (g = {
              experiment: r.experiment ?? '(none)',
              count: shard.count,
              trainRuns: 0,
              present: new Set(),
              runs: new Map(),
            }),
          );
        g.trainRuns = Math.max(g.trainRuns, shard.trainRuns);
        g.present.add(shard.index);
        g.runs.set(r.run_key, { index: shard.index, parent: r.parent_key });
      }
    } finally {
      src.close();
    }
  }
  return [...groups.values()]
    .sort((a, b) => a.experiment.localeCompare(b.experiment) || a.count - b.count)
    .map((g) => {
      const expected = Math.min(g.count, g.trainRuns);
      const missing = Array.from({ length: expected }, (_, i) => i).filter((i) => !g.present.has(i));
      const open = new Map<number, number>();
      for (const [key, { index, parent }] of g.runs) {
        // a run waiting on a failed or diverged run (a sample run of a failed training) is blocked, not unfinished
        const blocked = parent !== null && finished.has(parent) && !completed.has(parent);
        if (!finished.has(key) && !blocked) open.set(index, (open.get(index) ?? 0) + 1);
      }
      const unfinished = [...open.entries()].sort((a, b) => a[0] - b[0]).map(([index, runs]) => ({ index, runs }));
      return { experiment: g.experiment, count: g.count, expected, missing, unfinished };
    });
}

/** One sentence per sharded experiment that lacks shards or has unfinished ones (empty when complete). */
export function describeShardGaps(coverage: ShardCoverage[]): string[] {
  return coverage
    .filter((c) => c.missing.length > 0 || c.unfinished.length > 0)
    .map((c) => {
      const parts: string[] = [];
      const one = c.missing.length === 1;
      if (c.missing.length)
        parts.push(
          `${one ? 'shard' : 'shards'} ${c.missing.map((i) => `${i}/${c.count}`).join(', ')} ${one ? 'has' : 'have'} no results in the bundles given (never ran, or the bundle was not given)`,
        );
      for (const u of c.unfinished)
        parts.push(
          `shard ${u.index}/${c.count} has ${u.runs} unfinished ${u.runs === 1 ? 'run' : 'runs'} (its task was killed or is still running)`,
        );
      return `experiment '${c.experiment}': ${parts.join('; ')}`;
    });
}
