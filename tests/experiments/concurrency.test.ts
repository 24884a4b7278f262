// Two `fpdm-exp run` processes on the same database and spec at once: no corruption, no run done
// twice, every result present (and equal to a single process's).
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { cli, integrity, query, results, tempDir, writeSpec } from './harness.js';
import { TINY_SPEC, edit } from './specs.js';

const SPEC = edit(TINY_SPEC, 'seeds: [0]', 'seeds: [0, 1]');

test(
  'two concurrent runs share the work: each run once, all present, database intact',
  { timeout: 600_000 },
  async () => {
    const dir = tempDir('fpdm-conc-');
    const spec = writeSpec(dir, 'c.yaml', SPEC);
    const db = join(dir, 'shared', 'fpdm.sqlite');
    const one = join(dir, 'one', 'fpdm.sqlite');
    const run = (d: string) => cli(['--backend', 'wasm', 'run', spec, '--db', d, '--progress', 'none']);
    const [a, b, single] = await Promise.all([run(db), run(db), run(one)]);
    assert.equal(a.code, 0, a.stderr);
    assert.equal(b.code, 0, b.stderr);
    assert.equal(single.code, 0, single.stderr);
    assert.equal(integrity(db), 'ok');
    const runs =
      query<{ run_key: string; status: string; attempts: number }>(db, 'SELECT run_key, status, attempts FROM runs') ??
      [];
    assert.equal(runs.length, 4 + 2 * 5);
    for (const r of runs) {
      assert.equal(r.status, 'completed', r.run_key);
      assert.equal(r.attempts, 1, `run ${r.run_key} was claimed ${r.attempts} times`);
    }
    assert.deepEqual(results(db), results(one));
  },
);
