// The SQLite schema and its forward migrations. The schema version lives in `PRAGMA user_version`;
// migration i (1-based) takes a database from version i−1 to i inside one IMMEDIATE transaction, so
// a crash mid-migration leaves the previous version intact. A database whose version is newer than
// the last migration here is refused (by store.ts) before anything is written to it.
import type Database from 'better-sqlite3';

export interface Migration {
  /** what the migration does, for error messages */
  description: string;
  up: (db: Database.Database) => void;
}

export const MIGRATIONS: Migration[] = [
  {
    description: 'initial schema: experiments, runs, metrics, artifacts',
    up: (db) =>
      db.exec(`
        CREATE TABLE experiments (
          id          INTEGER PRIMARY KEY,
          name        TEXT NOT NULL UNIQUE,
          spec        TEXT NOT NULL,          -- the spec as given (YAML or JSON text)
          created_at  TEXT NOT NULL
        );
        CREATE TABLE runs (
          id            INTEGER PRIMARY KEY,
          run_key       TEXT NOT NULL UNIQUE, -- SHA-256 hex of the canonical resolved config
          experiment_id INTEGER REFERENCES experiments(id),
          kind          TEXT NOT NULL CHECK (kind IN ('train', 'sample', 'measure')),
          model         TEXT NOT NULL,        -- model label, e.g. 'DiT-S/2', 'FPDM-S/2'
          family        TEXT CHECK (family IS NULL OR family IN ('dit', 'fpdm')),
          parent_key    TEXT,                 -- run key this run builds on (e.g. its train run)
          status        TEXT NOT NULL CHECK (status IN ('pending', 'running', 'completed', 'failed', 'diverged')),
          seed          INTEGER,
          config        TEXT NOT NULL,        -- canonical resolved config (JSON)
          tags          TEXT NOT NULL DEFAULT '{}', -- run-level tags (JSON object, sorted keys)
          provenance    TEXT NOT NULL DEFAULT '{}', -- JSON: backend, packages, git commit, host, …
          created_at    TEXT NOT NULL,
          started_at    TEXT,
          finished_at   TEXT,
          heartbeat_at  TEXT,
          owner_pid     INTEGER,
          owner_host    TEXT,
          owner_token   TEXT,
          attempts      INTEGER NOT NULL DEFAULT 0,
          error         TEXT
        );
        CREATE INDEX runs_experiment ON runs(experiment_id, status);
        CREATE TABLE metrics (
          id      INTEGER PRIMARY KEY,
          run_id  INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
          name    TEXT NOT NULL,
          value   REAL,                       -- NULL only for a non-finite value (see 'nonfinite')
          unit    TEXT NOT NULL DEFAULT '',
          step    INTEGER,                    -- NULL for scalars; the x of a curve otherwise
          tags    TEXT NOT NULL DEFAULT '{}', -- JSON object with sorted keys
          nonfinite TEXT                      -- 'NaN' | 'Infinity' | '-Infinity' when value is not finite
        );
        -- one value per (run, name, step, tags): writing the same row again replaces it (idempotent resume)
        CREATE UNIQUE INDEX metrics_identity ON metrics(run_id, name, ifnull(step, -9223372036854775808), tags);
        CREATE INDEX metrics_name ON metrics(name);
        CREATE TABLE artifacts (
          id          INTEGER PRIMARY KEY,
          run_id      INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
          kind        TEXT NOT NULL CHECK (kind IN ('checkpoint', 'sample_grid', 'samples', 'figure')),
          path        TEXT NOT NULL,          -- relative to the database's directory (or absolute)
          sha256      TEXT NOT NULL,
          bytes       INTEGER NOT NULL,
          tags        TEXT NOT NULL DEFAULT '{}',
          created_at  TEXT NOT NULL,
          UNIQUE (run_id, kind, path)
        );
      `),
  },
];

export const SCHEMA_VERSION = MIGRATIONS.length;

/**
 * Applies the migrations after the database's current `user_version`, each in its own IMMEDIATE
 * transaction that also bumps `user_version`. Returns the versions it went from and to.
 */
export function migrate(db: Database.Database, migrations: Migration[] = MIGRATIONS): { from: number; to: number } {
  const from = db.pragma('user_version', { simple: true }) as number;
  for (let v = from; v < migrations.length; v++) {
    const m = migrations[v]!;
    const step = db.transaction(() => {
      // re-read inside the write lock: another process may have migrated meanwhile
      const now = db.pragma('user_version', { simple: true }) as number;
      if (now > v) return;
      m.up(db);
      db.pragma(`user_version = ${v + 1}`);
    });
    step.immediate();
  }
  return { from, to: Math.max(from, migrations.length) };
}
