import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { openStore } from '../../src/store/index.js';

const WORKER = resolve(import.meta.dirname, 'claim-worker.ts');

function runWorker(db: string, n: number, label: string): Promise<string[]> {
  return new Promise((res, rej) => {
    const p = spawn(process.execPath, ['--import', 'tsx', WORKER, db, String(n), label], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    p.on('close', (code) =>
      code === 0 ? res(JSON.parse(out) as string[]) : rej(new Error(`worker ${label} exited ${code}: ${err}`)),
    );
  });
}

test('two processes claiming the same runs at once: each run done exactly once, no corruption', async () => {
  const db = join(mkdtempSync(join(tmpdir(), 'fpdm-conc-')), 'r.sqlite');
  // no pre-created database: both processes race to create and migrate it too
  const n = 60;
  const workers = Promise.all([runWorker(db, n, 'A'), runWorker(db, n, 'B')]);
  // both workers start together (claim-worker.ts waits for this file once it is ready)
  for (let waited = 0; !(existsSync(`${db}.ready-A`) && existsSync(`${db}.ready-B`)); waited += 10) {
    assert.ok(waited < 120_000, 'the workers did not start');
    await new Promise((r) => setTimeout(r, 10));
  }
  writeFileSync(`${db}.go`, '');
  const [a, b] = await workers;
  const all = [...a, ...b];
  assert.equal(new Set(all).size, all.length, 'a run was claimed by both processes');
  assert.equal(all.length, n, 'every run was done');
  assert.ok(a.length > 0 && b.length > 0, `both processes did work (A ${a.length}, B ${b.length})`);
  const s = openStore(db);
  assert.equal(s.integrityCheck(), 'ok');
  const runs = s.listRuns();
  assert.equal(runs.length, n);
  for (const r of runs) {
    assert.equal(r.status, 'completed');
    assert.equal(r.attempts, 1);
  }
  assert.equal(s.metrics({ names: ['train_loss'] }).length, n * 20);
  assert.equal(s.metrics({ names: ['fid'] }).length, n);
  s.close();
});
