// Helpers for tests that run the CLI as separate processes: asynchronous spawn (so several can run at
// once or be killed mid-run), polling a database, and reading a database's results in a comparable form.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { ROOT } from '../cli.js';

const ENTRY = resolve(ROOT, 'src', 'cli', 'run.ts');

export interface Proc {
  child: ChildProcess;
  done: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>;
}

/** Starts `fpdm-exp <args>` from source without waiting. */
export function startCli(args: string[]): Proc {
  const child = spawn(process.execPath, ['--import', 'tsx', ENTRY, ...args], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += String(d)));
  child.stderr!.on('data', (d) => (stderr += String(d)));
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>(
    (res) => child.on('close', (code, signal) => res({ code, signal, stdout, stderr })),
  );
  return { child, done };
}

export async function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return startCli(args).done;
}

/** Runs `fn` over `items` with at most `limit` at a time. */
export async function pool<T, R>(items: T[], limit: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const workers = Array.from({ length: limit }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  });
  await Promise.all(workers);
  return out;
}

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export function writeSpec(dir: string, name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

/** Polls `cond` every 100 ms until it holds (true) or `timeoutMs` passes (false). */
export async function waitFor(cond: () => boolean, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (cond()) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}

/** Reads rows from a database that another process may be writing (null when it cannot be read yet). */
export function query<T>(db: string, sql: string): T[] | null {
  try {
    const d = new Database(db, { readonly: true, fileMustExist: true, timeout: 2000 });
    try {
      return d.prepare(sql).all() as T[];
    } finally {
      d.close();
    }
  } catch {
    return null;
  }
}

/** Metrics that measure wall-clock time: equal runs give different values, so comparisons leave them out. */
export const TIMING_METRICS = ['sample_seconds', 'train_seconds', 'images_per_s'];

/** Every run (key, kind, status) and every non-timing metric row of a database, sorted. */
export function results(db: string): { runs: string[]; metrics: string[] } {
  const runs =
    query<{ run_key: string; kind: string; status: string; config: string }>(
      db,
      'SELECT run_key, kind, status, config FROM runs ORDER BY run_key',
    ) ?? [];
  const metrics =
    query<{
      run_key: string;
      name: string;
      value: number | null;
      step: number | null;
      tags: string;
      nonfinite: string | null;
    }>(
      db,
      'SELECT r.run_key, m.name, m.value, m.step, m.tags, m.nonfinite FROM metrics m JOIN runs r ON r.id = m.run_id',
    ) ?? [];
  return {
    runs: runs.map((r) => `${r.run_key} ${r.kind} ${r.status} ${r.config}`).sort(),
    metrics: metrics
      .filter((m) => !TIMING_METRICS.includes(m.name))
      .map((m) => `${m.run_key} ${m.name} ${m.step ?? '-'} ${m.tags} ${m.value ?? m.nonfinite}`)
      .sort(),
  };
}

export function integrity(db: string): string {
  const d = new Database(db, { readonly: true });
  try {
    return (d.pragma('integrity_check') as { integrity_check: string }[]).map((r) => r.integrity_check).join('\n');
  } finally {
    d.close();
  }
}

/** Highest checkpoint step of a train run still in progress in a bundle (0 if none yet). */
export function checkpointStep(bundle: string): number {
  const runs = join(bundle, 'artifacts', 'runs');
  if (!existsSync(runs)) return 0;
  let best = 0;
  for (const k of readdirSync(runs)) {
    try {
      const meta = JSON.parse(readFileSync(join(runs, k, 'checkpoint.json'), 'utf8')) as {
        step: number;
        status: string;
      };
      if (meta.status === 'running') best = Math.max(best, meta.step);
    } catch {
      // not written yet, or being replaced right now
    }
  }
  return best;
}
