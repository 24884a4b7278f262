// The results store: one SQLite file (better-sqlite3) in WAL mode with a busy timeout; every write
// is an IMMEDIATE transaction so two processes never interleave a read-modify-write. Runs are
// claimed atomically by key (see claimRun), metrics are one row per value, artifacts are files the
// database points at (paths relative to the database's directory) with their SHA-256 and size.
import Database from 'better-sqlite3';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, isAbsolute, relative, resolve } from 'node:path';
import { randomUUID } from 'node:crypto';
import { UserError, isNodeError } from '../util/errors.js';
import { readHead, requireFile } from '../util/fs.js';
import { inputErrorOf, noteDatabase } from '../util/input-errors.js';
import { canonicalJson, sha256Hex } from './json.js';
import {
  ARTIFACT_KINDS,
  RUN_KINDS,
  MODEL_FAMILIES,
  type ArtifactKind,
  type ModelFamily,
  type RunKind,
  type RunStatus,
} from './names.js';
import { SCHEMA_VERSION, migrate } from './schema.js';
import type {
  ArtifactInput,
  ArtifactRecord,
  ClaimOptions,
  ClaimResult,
  ExperimentRecord,
  MetricFilter,
  MetricInput,
  MetricRecord,
  Provenance,
  RunFilter,
  RunInput,
  RunRecord,
  TagValue,
  Tags,
} from './types.js';

export interface OpenOptions {
  /** open an existing database for reading only (the report); nothing is created or migrated */
  readonly?: boolean;
  /** how long a writer waits for another writer's lock, in ms (default 10 000) */
  busyTimeoutMs?: number;
}

/** A `running` run whose owner is on another host is taken over after this long without a heartbeat. */
export const DEFAULT_STALE_AFTER_MS = 15 * 60_000;

/**
 * Opens (creating and migrating if needed) the store at `path`. Only fpdm-exp's own databases are
 * opened (see inspectDatabase): any other SQLite file, a file that is not SQLite, or a database
 * written by a newer version of this tool is refused with a UserError before anything is written to it.
 */
export function openStore(path: string, opts: OpenOptions = {}): Store {
  const found = path === ':memory:' ? 'absent' : inspectDatabase(path);
  if (opts.readonly && found === 'absent')
    throw new UserError(`database '${path}' does not exist: run an experiment first or pass --db with the right path`);
  if (opts.readonly && found === 'empty')
    throw new UserError(`database '${path}' is empty (no fpdm-exp results in it): pass --db with the right path`);
  if (typeof found === 'object' && found.version > SCHEMA_VERSION)
    throw new UserError(
      `database '${path}' has schema version ${found.version}, newer than this fpdm-exp understands (${SCHEMA_VERSION}): ` +
        'upgrade fpdm-exp; the database was left untouched',
    );
  if (!opts.readonly && path !== ':memory:') {
    const dir = dirname(resolve(path));
    if (!existsSync(dir))
      throw new UserError(`directory '${dir}' for database '${path}' does not exist: create it first`);
  }
  const subject = `database '${path}'`;
  noteDatabase(path);
  let db: Database.Database;
  try {
    db = new Database(path, {
      readonly: opts.readonly ?? false,
      fileMustExist: opts.readonly ?? false,
      timeout: opts.busyTimeoutMs ?? 10_000,
    });
  } catch (e) {
    throw inputErrorOf(e, subject) ?? e;
  }
  try {
    if (!opts.readonly) {
      setWal(db, opts.busyTimeoutMs ?? 10_000);
      db.pragma('synchronous = NORMAL'); // durable across process crashes in WAL mode; fsync at checkpoints
      migrate(db);
      // mark the file as ours (databases made before the mark existed get it the first time they are opened for writing)
      if ((db.pragma('application_id', { simple: true }) as number) !== APPLICATION_ID)
        db.pragma(`application_id = ${APPLICATION_ID}`);
    } else if ((db.pragma('user_version', { simple: true }) as number) !== SCHEMA_VERSION) {
      throw new UserError(
        `database '${path}' has an older schema: open it once read-write (e.g. with \`fpdm-exp run\`) to migrate it`,
      );
    }
    db.pragma('foreign_keys = ON');
  } catch (e) {
    db.close();
    throw inputErrorOf(e, subject) ?? e;
  }
  return new Store(db, path);
}

/**
 * `journal_mode = WAL` takes a lock for which SQLite does not call the busy handler: two processes that
 * open a new database at the same moment (shards, workers) can get SQLITE_BUSY at once. Retried here,
 * a few milliseconds apart, for up to the busy timeout.
 */
function setWal(db: Database.Database, timeoutMs: number): void {
  const end = Date.now() + timeoutMs;
  for (;;) {
    try {
      db.pragma('journal_mode = WAL');
      return;
    } catch (e) {
      if ((e as { code?: string }).code !== 'SQLITE_BUSY' || Date.now() > end) throw e;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5); // sleep 5 ms
    }
  }
}

/**
 * `PRAGMA application_id` of fpdm-exp databases: the bytes 'FPDM'. Set when a database is created
 * (or first opened for writing by a version that knows the mark); a database of another program
 * carries its own id or none.
 */
export const APPLICATION_ID = 0x4650444d;

/** Tables (and a column) every fpdm-exp database has had since schema version 1. */
const OWN_TABLES = ['experiments', 'runs', 'metrics', 'artifacts'];

/**
 * What is at `path`, looked at read-only (nothing is written): 'absent' (no file), 'empty' (a
 * zero-byte file, or an SQLite file with no tables and no marks: nothing to lose, so it may become a
 * store), or one of our databases with its schema version. Anything else is a UserError: a directory,
 * a file that is not SQLite, an SQLite database of another program (another application_id, or
 * unmarked with tables that are not ours), an unreadable file.
 */
export function inspectDatabase(path: string): 'absent' | 'empty' | { version: number; marked: boolean } {
  let st: ReturnType<typeof statSync>;
  try {
    st = statSync(path);
  } catch (e) {
    if (isNodeError(e, 'ENOENT')) return 'absent';
    if (isNodeError(e, 'ENOTDIR'))
      throw new UserError(
        `database '${path}' cannot exist: a part of its path is a file, not a directory; choose another --db`,
      );
    throw inputErrorOf(e, `database '${path}'`) ?? e;
  }
  if (st.isDirectory())
    throw new UserError(
      `database '${path}' is a directory: give the path of a .sqlite file (e.g. ${path.replace(/[\\/]+$/, '')}/fpdm.sqlite)`,
    );
  if (!st.isFile()) throw new UserError(`database '${path}' is not a regular file`);
  if (st.size === 0) return 'empty';
  const head = readHead(path, 16, 'database');
  if (head.length < 16 || new TextDecoder().decode(head) !== 'SQLite format 3\0')
    throw new UserError(
      `'${path}' is not an SQLite database (nor an fpdm-exp results database); it was left untouched: pass --db with the path of a results database, or a new file name`,
    );
  let db: Database.Database | undefined;
  try {
    db = new Database(path, { readonly: true, fileMustExist: true });
    const appId = db.pragma('application_id', { simple: true }) as number;
    const version = db.pragma('user_version', { simple: true }) as number;
    const tables = (
      db
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
        .all() as { name: string }[]
    ).map((r) => r.name);
    const objects = (db.prepare('SELECT count(*) AS n FROM sqlite_master').get() as { n: number }).n;
    const foreign = (why: string) =>
      new UserError(
        `'${path}' is an SQLite database of another program (${why}), not an fpdm-exp results database; ` +
          'it was left untouched: pass --db with the path of a results database, or a new file name',
      );
    if (appId === APPLICATION_ID) return { version, marked: true };
    if (appId !== 0) throw foreign(`application_id 0x${(appId >>> 0).toString(16).padStart(8, '0')}`);
    if (objects === 0 && version === 0) return 'empty';
    const ours =
      version >= 1 &&
      OWN_TABLES.every((t) => tables.includes(t)) &&
      (db.prepare('SELECT name FROM pragma_table_info(?)').all('runs') as { name: string }[]).some(
        (c) => c.name === 'run_key',
      );
    if (!ours)
      throw foreign(
        tables.length
          ? `tables: ${tables.slice(0, 8).join(', ')}${tables.length > 8 ? ', …' : ''}`
          : `user_version ${version}, no tables of ours`,
      );
    return { version, marked: false };
  } catch (e) {
    if (e instanceof UserError) throw e;
    throw inputErrorOf(e, `database '${path}'`) ?? e;
  } finally {
    db?.close();
  }
}

const now = (): string => new Date().toISOString();

interface RunRow {
  id: number;
  run_key: string;
  experiment: string | null;
  kind: RunKind;
  model: string;
  family: ModelFamily | null;
  parent_key: string | null;
  status: RunStatus;
  seed: number | null;
  config: string;
  tags: string;
  provenance: string;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  heartbeat_at: string | null;
  owner_pid: number | null;
  owner_host: string | null;
  owner_token: string | null;
  attempts: number;
  error: string | null;
}

const RUN_SELECT = `SELECT r.*, e.name AS experiment FROM runs r LEFT JOIN experiments e ON e.id = r.experiment_id`;

function toRun(r: RunRow): RunRecord {
  return {
    id: r.id,
    key: r.run_key,
    experiment: r.experiment,
    kind: r.kind,
    model: r.model,
    family: r.family,
    parentKey: r.parent_key,
    status: r.status,
    seed: r.seed,
    config: JSON.parse(r.config) as unknown,
    tags: JSON.parse(r.tags) as Tags,
    provenance: JSON.parse(r.provenance) as Provenance,
    createdAt: r.created_at,
    startedAt: r.started_at,
    finishedAt: r.finished_at,
    heartbeatAt: r.heartbeat_at,
    owner: r.owner_pid === null ? null : { pid: r.owner_pid, host: r.owner_host ?? '' },
    attempts: r.attempts,
    error: r.error,
  };
}

export function validateTags(tags: Tags | undefined, where: string): string {
  for (const [k, v] of Object.entries(tags ?? {})) {
    const ok =
      v === null || typeof v === 'string' || typeof v === 'boolean' || (typeof v === 'number' && Number.isFinite(v));
    if (!ok)
      throw new Error(`${where}: tag '${k}' must be a finite number, string, boolean or null (got ${String(v)})`);
  }
  return canonicalJson(tags ?? {});
}

export class Store {
  /** token of this Store instance; a run claimed here carries it */
  readonly ownerToken = randomUUID();
  readonly host = hostname();
  /** directory that relative artifact paths are resolved against */
  readonly dir: string;

  constructor(
    readonly db: Database.Database,
    readonly path: string,
  ) {
    this.dir = path === ':memory:' ? process.cwd() : dirname(resolve(path));
  }

  close(): void {
    if (this.db.open) this.db.close();
  }

  schemaVersion(): number {
    return this.db.pragma('user_version', { simple: true }) as number;
  }

  /** `PRAGMA integrity_check`: 'ok' for a healthy database, otherwise the problems found. */
  integrityCheck(): string {
    const rows = this.db.pragma('integrity_check') as { integrity_check: string }[];
    return rows.map((r) => r.integrity_check).join('\n');
  }

  /** Runs `fn` inside one IMMEDIATE write transaction (all or nothing). */
  write<T>(fn: () => T): T {
    try {
      return this.db.transaction(fn).immediate();
    } catch (e) {
      throw inputErrorOf(e, `database '${this.path}'`) ?? e; // busy, read-only, full, corrupt: about the file
    }
  }

  // ---- experiments ---------------------------------------------------------------------------

  /** Inserts the experiment or updates its spec text; returns its id. */
  upsertExperiment(name: string, spec: string): number {
    return this.write(() => {
      const row = this.db.prepare('SELECT id FROM experiments WHERE name = ?').get(name) as { id: number } | undefined;
      if (row) {
        this.db.prepare('UPDATE experiments SET spec = ? WHERE id = ?').run(spec, row.id);
        return row.id;
      }
      return Number(
        this.db.prepare('INSERT INTO experiments (name, spec, created_at) VALUES (?, ?, ?)').run(name, spec, now())
          .lastInsertRowid,
      );
    });
  }

  experiments(): ExperimentRecord[] {
    return (
      this.db.prepare('SELECT id, name, spec, created_at FROM experiments ORDER BY id').all() as {
        id: number;
        name: string;
        spec: string;
        created_at: string;
      }[]
    ).map((r) => ({ id: r.id, name: r.name, spec: r.spec, createdAt: r.created_at }));
  }

  // ---- runs ----------------------------------------------------------------------------------

  private experimentId(name: string | undefined): number | null {
    if (name === undefined) return null;
    const row = this.db.prepare('SELECT id FROM experiments WHERE name = ?').get(name) as { id: number } | undefined;
    if (row) return row.id;
    return Number(
      this.db.prepare('INSERT INTO experiments (name, spec, created_at) VALUES (?, ?, ?)').run(name, '', now())
        .lastInsertRowid,
    );
  }

  private insertRun(input: RunInput, status: RunStatus): number {
    if (!/^[0-9a-f]{64}$/.test(input.key))
      throw new Error(`run key must be 64 lowercase hex characters (SHA-256), got '${input.key}'`);
    if (!RUN_KINDS.includes(input.kind))
      throw new Error(`run kind must be one of ${RUN_KINDS.join(', ')}, got '${input.kind}'`);
    if (input.family != null && !MODEL_FAMILIES.includes(input.family))
      throw new Error(`model family must be one of ${MODEL_FAMILIES.join(', ')}`);
    const res = this.db
      .prepare(
        `INSERT INTO runs (run_key, experiment_id, kind, model, family, parent_key, status, seed, config, tags, provenance, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(
        input.key,
        this.experimentId(input.experiment),
        input.kind,
        input.model,
        input.family ?? null,
        input.parentKey ?? null,
        status,
        input.seed ?? null,
        canonicalJson(input.config ?? {}),
        validateTags(input.tags, `run ${input.key}`),
        canonicalJson(input.provenance ?? {}),
        now(),
      );
    return Number(res.lastInsertRowid);
  }

  /** Registers planned runs as `pending` (those already present, in any status, are left alone). */
  addPendingRuns(inputs: RunInput[]): void {
    this.write(() => {
      for (const input of inputs)
        if (!this.db.prepare('SELECT 1 FROM runs WHERE run_key = ?').get(input.key)) this.insertRun(input, 'pending');
    });
  }

  /**
   * Atomically inserts-or-claims the run with `input.key` for this process (one IMMEDIATE
   * transaction, so of two processes claiming the same key exactly one wins):
   * - absent or `pending` → claimed (status `running`, owner = this pid/host/token);
   * - `running` with a live owner → `busy` (someone else is doing it); with a dead owner (same host,
   *   pid gone; other host, no heartbeat for `staleAfterMs`) or owned by this Store → claimed again
   *   (`previous: 'running'`: resume from the run's checkpoint);
   * - `completed` → `done`; `failed`/`diverged` → `failed`, or claimed when `retryFailed`.
   * Claiming increments `attempts`, sets `started_at` and clears `error`/`finished_at`. Metrics of an
   * earlier attempt are kept; delete them with `deleteMetrics` when restarting from scratch.
   */
  claimRun(input: RunInput, opts: ClaimOptions = {}): ClaimResult {
    return this.write((): ClaimResult => {
      const row = this.db.prepare(`${RUN_SELECT} WHERE r.run_key = ?`).get(input.key) as RunRow | undefined;
      let previous: RunStatus | null = null;
      let id: number;
      if (!row) {
        id = this.insertRun(input, 'running');
      } else {
        previous = row.status;
        if (row.status === 'completed') return { outcome: 'done', run: toRun(row) };
        if ((row.status === 'failed' || row.status === 'diverged') && !opts.retryFailed)
          return { outcome: 'failed', run: toRun(row) };
        if (row.status === 'running' && this.ownerAlive(row, opts.staleAfterMs ?? DEFAULT_STALE_AFTER_MS))
          return { outcome: 'busy', run: toRun(row) };
        id = row.id;
      }
      const t = now();
      const sets = [
        'status = ?',
        'started_at = ?',
        'heartbeat_at = ?',
        'finished_at = NULL',
        'error = NULL',
        'owner_pid = ?',
        'owner_host = ?',
        'owner_token = ?',
        'attempts = attempts + 1',
      ];
      const args: unknown[] = ['running', t, t, process.pid, this.host, this.ownerToken];
      if (input.provenance !== undefined) (sets.push('provenance = ?'), args.push(canonicalJson(input.provenance)));
      this.db.prepare(`UPDATE runs SET ${sets.join(', ')} WHERE id = ?`).run(...args, id);
      return { outcome: 'claimed', previous, run: this.getRunById(id)! };
    });
  }

  private ownerAlive(row: RunRow, staleAfterMs: number): boolean {
    if (row.owner_token === this.ownerToken) return false; // ours: claiming again is a resume
    if (row.owner_host === this.host && row.owner_pid !== null) {
      if (row.owner_pid === process.pid) return false; // an earlier process with our pid, or another Store of ours
      try {
        process.kill(row.owner_pid, 0);
        return true;
      } catch (e) {
        return isNodeError(e, 'EPERM'); // exists but is not ours to signal: alive
      }
    }
    const beat = Date.parse(row.heartbeat_at ?? row.started_at ?? '');
    return Number.isFinite(beat) && Date.now() - beat < staleAfterMs;
  }

  /** Marks the run as still being worked on (call at least every few minutes from long runs). */
  heartbeat(runId: number): void {
    this.write(() =>
      this.db
        .prepare('UPDATE runs SET heartbeat_at = ? WHERE id = ? AND owner_token = ?')
        .run(now(), runId, this.ownerToken),
    );
  }

  /** Adds the final metrics and artifacts and marks the run `completed`, all in one transaction. */
  completeRun(
    runId: number,
    extra: { metrics?: MetricInput[]; artifacts?: ArtifactInput[]; provenance?: Provenance } = {},
  ): void {
    const arts = (extra.artifacts ?? []).map((a) => this.prepareArtifact(a)); // hash files outside the lock
    this.write(() => {
      this.requireRun(runId);
      if (extra.metrics) this.insertMetrics(runId, extra.metrics);
      for (const a of arts) this.insertArtifact(runId, a);
      const prov = extra.provenance === undefined ? [] : [canonicalJson(extra.provenance)];
      this.db
        .prepare(
          `UPDATE runs SET status = 'completed', finished_at = ?, error = NULL, owner_pid = NULL, owner_host = NULL, owner_token = NULL${prov.length ? ', provenance = ?' : ''} WHERE id = ?`,
        )
        .run(now(), ...prov, runId);
    });
  }

  /** Marks the run `failed` (an exception) or `diverged` (a non-finite loss) with its error text. */
  failRun(runId: number, error: string, status: 'failed' | 'diverged' = 'failed'): void {
    this.write(() => {
      this.requireRun(runId);
      this.db
        .prepare(
          'UPDATE runs SET status = ?, error = ?, finished_at = ?, owner_pid = NULL, owner_host = NULL, owner_token = NULL WHERE id = ?',
        )
        .run(status, error, now(), runId);
    });
  }

  private requireRun(runId: number): void {
    if (!this.db.prepare('SELECT 1 FROM runs WHERE id = ?').get(runId))
      throw new Error(`no run with id ${runId} in ${this.path}`);
  }

  getRun(key: string): RunRecord | undefined {
    const r = this.db.prepare(`${RUN_SELECT} WHERE r.run_key = ?`).get(key) as RunRow | undefined;
    return r && toRun(r);
  }

  getRunById(id: number): RunRecord | undefined {
    const r = this.db.prepare(`${RUN_SELECT} WHERE r.id = ?`).get(id) as RunRow | undefined;
    return r && toRun(r);
  }

  listRuns(filter: RunFilter = {}): RunRecord[] {
    const { where, args } = runWhere(filter);
    return (this.db.prepare(`${RUN_SELECT} ${where} ORDER BY r.id`).all(...args) as RunRow[]).map(toRun);
  }

  // ---- metrics -------------------------------------------------------------------------------

  /**
   * Adds metric rows in one transaction. A row with the same (run, name, step, tags) as an existing
   * one replaces it, so re-writing a resumed run's curve is idempotent. Non-finite values are kept
   * (stored as NULL plus their spelling) so a diverged loss is recorded, never dropped.
   */
  addMetrics(runId: number, rows: MetricInput[]): void {
    this.write(() => {
      this.requireRun(runId);
      this.insertMetrics(runId, rows);
    });
  }

  private insertMetrics(runId: number, rows: MetricInput[]): void {
    const ins = this.db.prepare(
      'INSERT OR REPLACE INTO metrics (run_id, name, value, unit, step, tags, nonfinite) VALUES (?, ?, ?, ?, ?, ?, ?)',
    );
    for (const m of rows) {
      if (typeof m.value !== 'number') throw new Error(`metric '${m.name}': value must be a number`);
      if (m.step != null && !Number.isInteger(m.step))
        throw new Error(`metric '${m.name}': step must be an integer, got ${m.step}`);
      const finite = Number.isFinite(m.value);
      ins.run(
        runId,
        m.name,
        finite ? m.value : null,
        m.unit ?? '',
        m.step ?? null,
        validateTags(m.tags, `metric ${m.name}`),
        finite ? null : String(m.value),
      );
    }
  }

  /** Deletes a run's metrics (all, one name, and/or those with step >= fromStep); returns how many. */
  deleteMetrics(runId: number, filter: { name?: string; fromStep?: number } = {}): number {
    return this.write(() => {
      let sql = 'DELETE FROM metrics WHERE run_id = ?';
      const args: unknown[] = [runId];
      if (filter.name !== undefined) ((sql += ' AND name = ?'), args.push(filter.name));
      if (filter.fromStep !== undefined) ((sql += ' AND step >= ?'), args.push(filter.fromStep));
      return this.db.prepare(sql).run(...args).changes;
    });
  }

  /**
   * Metric rows joined with their run. `tags` merges the run's tags, its seed (`seed`) and the
   * row's own tags (the row's win). Ordered by run id, name, step.
   */
  metrics(filter: MetricFilter = {}): MetricRecord[] {
    const { where, args } = runWhere(filter);
    const conds = where ? [where.replace(/^WHERE /, '')] : [];
    if (filter.names?.length)
      (conds.push(`m.name IN (${filter.names.map(() => '?').join(', ')})`), args.push(...filter.names));
    const sql = `SELECT m.name, m.value, m.unit, m.step, m.tags AS mtags, m.nonfinite, r.id AS run_id, r.run_key, e.name AS experiment,
        r.kind, r.model, r.family, r.seed, r.status, r.tags AS rtags, r.finished_at
      FROM metrics m JOIN runs r ON r.id = m.run_id LEFT JOIN experiments e ON e.id = r.experiment_id
      ${conds.length ? 'WHERE ' + conds.join(' AND ') : ''} ORDER BY r.id, m.name, m.step, m.id`;
    type Row = {
      name: string;
      value: number | null;
      unit: string;
      step: number | null;
      mtags: string;
      nonfinite: string | null;
      run_id: number;
      run_key: string;
      experiment: string | null;
      kind: RunKind;
      model: string;
      family: ModelFamily | null;
      seed: number | null;
      status: RunStatus;
      rtags: string;
      finished_at: string | null;
    };
    return (this.db.prepare(sql).all(...args) as Row[]).map((r) => {
      const tags: Tags = { ...(JSON.parse(r.rtags) as Tags) };
      if (r.seed !== null && tags.seed === undefined) tags.seed = r.seed;
      Object.assign(tags, JSON.parse(r.mtags) as Tags);
      return {
        runId: r.run_id,
        runKey: r.run_key,
        experiment: r.experiment,
        kind: r.kind,
        model: r.model,
        family: r.family,
        seed: r.seed,
        status: r.status,
        finishedAt: r.finished_at,
        name: r.name,
        value: r.value ?? Number(r.nonfinite ?? NaN),
        unit: r.unit,
        step: r.step,
        tags,
      };
    });
  }

  // ---- artifacts -----------------------------------------------------------------------------

  private prepareArtifact(a: ArtifactInput): {
    kind: ArtifactKind;
    path: string;
    sha256: string;
    bytes: number;
    tags: string;
  } {
    if (!ARTIFACT_KINDS.includes(a.kind))
      throw new Error(`artifact kind must be one of ${ARTIFACT_KINDS.join(', ')}, got '${a.kind}'`);
    const abs = resolve(a.path);
    const bytes = a.bytes ?? requireFile(abs, 'artifact');
    const sha256 = a.sha256 ?? sha256Hex(readFileSync(abs));
    const rel = relative(this.dir, abs);
    return {
      kind: a.kind,
      path: isAbsolute(rel) ? abs : rel.split('\\').join('/'),
      sha256,
      bytes,
      tags: validateTags(a.tags, `artifact ${a.path}`),
    };
  }

  private insertArtifact(runId: number, a: ReturnType<Store['prepareArtifact']>): void {
    this.db
      .prepare(
        'INSERT OR REPLACE INTO artifacts (run_id, kind, path, sha256, bytes, tags, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
      )
      .run(runId, a.kind, a.path, a.sha256, a.bytes, a.tags, now());
  }

  /**
   * Records a file produced by a run. `path` is resolved against the current directory and stored
   * relative to the database's directory; sha256 and bytes are computed from the file unless given.
   */
  addArtifact(runId: number, a: ArtifactInput): void {
    const prepared = this.prepareArtifact(a);
    this.write(() => {
      this.requireRun(runId);
      this.insertArtifact(runId, prepared);
    });
  }

  artifacts(filter: RunFilter & { artifactKinds?: ArtifactKind[] } = {}): ArtifactRecord[] {
    const { where, args } = runWhere(filter);
    const conds = where ? [where.replace(/^WHERE /, '')] : [];
    if (filter.artifactKinds?.length)
      (conds.push(`a.kind IN (${filter.artifactKinds.map(() => '?').join(', ')})`), args.push(...filter.artifactKinds));
    const sql = `SELECT a.*, r.run_key, r.model, r.family, r.seed, r.tags AS rtags, e.name AS experiment
      FROM artifacts a JOIN runs r ON r.id = a.run_id LEFT JOIN experiments e ON e.id = r.experiment_id
      ${conds.length ? 'WHERE ' + conds.join(' AND ') : ''} ORDER BY a.id`;
    type Row = {
      id: number;
      run_id: number;
      kind: ArtifactKind;
      path: string;
      sha256: string;
      bytes: number;
      tags: string;
      created_at: string;
      run_key: string;
      model: string;
      family: ModelFamily | null;
      seed: number | null;
      rtags: string;
      experiment: string | null;
    };
    return (this.db.prepare(sql).all(...args) as Row[]).map((r) => {
      const tags: Tags = { ...(JSON.parse(r.rtags) as Tags) };
      if (r.seed !== null && tags.seed === undefined) tags.seed = r.seed;
      Object.assign(tags, JSON.parse(r.tags) as Tags);
      return {
        id: r.id,
        runId: r.run_id,
        runKey: r.run_key,
        experiment: r.experiment,
        model: r.model,
        family: r.family,
        kind: r.kind,
        path: r.path,
        absPath: isAbsolute(r.path) ? r.path : resolve(this.dir, r.path),
        sha256: r.sha256,
        bytes: r.bytes,
        tags,
        createdAt: r.created_at,
      };
    });
  }
}

function runWhere(f: RunFilter): { where: string; args: unknown[] } {
  const conds: string[] = [];
  const args: unknown[] = [];
  const inList = (col: string, vals: readonly unknown[] | undefined) => {
    if (vals === undefined) return;
    conds.push(vals.length ? `${col} IN (${vals.map(() => '?').join(', ')})` : '0');
    args.push(...vals);
  };
  if (f.experiment !== undefined) (conds.push('e.name = ?'), args.push(f.experiment));
  inList('r.status', f.status);
  inList('r.kind', f.kinds);
  inList('r.model', f.models);
  if (f.key !== undefined) (conds.push('r.run_key = ?'), args.push(f.key));
  return { where: conds.length ? 'WHERE ' + conds.join(' AND ') : '', args };
}

export type { TagValue };
