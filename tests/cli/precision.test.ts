// `run` / `plan` at a precision through the CLI: every way of asking for mixed precision where it cannot
// run (a CPU backend from the spec or a flag, a GPU without the features, an unknown value) exits 2 with
// one message naming the field or flag and the fix, and leaves a database's stored results as they
// were; a plan of fp32 and mixed is planned (and its fp32 runs keyed as a plain spec's) without a GPU.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { mixedPrecisionSupport } from '../../src/backends/webgpu/device.js';
import { METRIC, openStore, sha256Hex } from '../../src/store/index.js';
import { cli, pool, query, tempDir, writeSpec } from '../experiments/harness.js';
import { TINY_SPEC, edit } from '../experiments/specs.js';

const dir = tempDir('fpdm-precision-cli-');
const spec = (name: string, extra: string) =>
  writeSpec(dir, name, edit(TINY_SPEC, 'seeds: [0]', `seeds: [0]\n${extra}`));
const plain = writeSpec(dir, 'plain.yaml', TINY_SPEC);
const mixed = spec('mixed.yaml', 'precision: mixed');
const both = spec('both.yaml', 'precision: [fp32, mixed]');
const onWasm = spec('wasm.yaml', 'backend: wasm');
const mixedOnCpu = spec('mixed-cpu.yaml', 'backend: cpu\nprecision: mixed');

/** A database holding one completed run with a metric, and a digest of everything it stores. */
function storedDb(name: string): { db: string; digest: () => string } {
  const db = join(dir, `${name}.sqlite`);
  const s = openStore(db);
  s.upsertExperiment('tiny', TINY_SPEC);
  const c = s.claimRun({ key: sha256Hex('stored'), experiment: 'tiny', kind: 'train', model: 'DiT', config: { a: 1 } });
  if (c.outcome !== 'claimed') throw new Error('claim');
  s.completeRun(c.run.id, { metrics: [{ name: METRIC.params, value: 123 }] });
  s.close();
  const digest = () =>
    sha256Hex(
      JSON.stringify(
        ['experiments', 'runs', 'metrics', 'artifacts'].map((t) => query(db, `SELECT * FROM ${t} ORDER BY id`)),
      ),
    );
  return { db, digest };
}

test('mixed precision where it cannot run: exit 2, one message naming the field or flag and the fix, nothing stored lost', async () => {
  const { db, digest } = storedDb('cpu');
  const before = digest();
  const cases: [string[], RegExp][] = [
    [['run', mixedOnCpu], /precision: received "mixed" with backend: cpu.*fix: backend: webgpu/],
    [['--backend', 'cpu', 'run', mixed], /--backend cpu: the spec .* runs at precision mixed.*fix: --backend webgpu/],
    [['--backend', 'wasm', 'plan', both], /--backend wasm: the spec .* runs at precision mixed/],
    [
      ['--precision', 'mixed', 'run', onWasm],
      /--precision mixed: .* the spec .* says backend: wasm; fix: add --backend webgpu/,
    ],
    [
      ['--precision', 'mixed', '--backend', 'cpu', 'run', plain],
      /--precision mixed runs on the webgpu backend only.*not on 'cpu'/,
    ],
    [['--precision', 'bf16', 'run', plain], /--precision: 'bf16' is not a precision; choose one of fp32, mixed/],
  ];
  const rs = await pool(cases, 3, ([args]) => cli([...args, '--db', db]));
  rs.forEach((r, i) => {
    const what = cases[i]![0].join(' ');
    assert.equal(r.code, 2, `${what}: exit ${r.code}\n${r.stderr}`);
    assert.match(r.stderr, cases[i]![1], what);
    assert.equal(r.stderr.match(/^error: /gm)?.length, 1, `${what}: one message\n${r.stderr}`);
    assert.ok(!r.stderr.includes('internal error'), what);
  });
  assert.equal(digest(), before, 'the stored results changed');
});

test(
  'a machine without the mixed-precision features: the reason, before any run computes (fp32 ones included)',
  { skip: (await mixedPrecisionSupport()).ok ? 'this machine can run mixed precision' : false },
  async () => {
    const { db, digest } = storedDb('no-features');
    const before = digest();
    const [field, flag] = await Promise.all([
      cli(['run', both, '--db', db]),
      cli(['--precision', 'mixed', 'run', plain, '--db', db]),
    ]);
    assert.equal(field.code, 2, field.stderr);
    assert.match(field.stderr, /error: precision: mixed \(.*both\.yaml\) cannot be used here: .*use --precision fp32/);
    assert.equal(flag.code, 2, flag.stderr);
    assert.match(flag.stderr, /error: --precision mixed cannot be used here: .*use --precision fp32/);
    assert.equal(digest(), before, 'the stored results changed');
  },
);

test('--dry-run of fp32 and mixed: every run with its precision; the fp32 ones keyed as a plain spec; a precision column', async () => {
  const db = join(dir, 'dry.sqlite');
  const [a, b, text, plainText] = await Promise.all([
    cli(['run', plain, '--db', db, '--dry-run', '--json']),
    cli(['run', both, '--db', db, '--dry-run', '--json']),
    cli(['run', both, '--db', db, '--dry-run']),
    cli(['run', plain, '--db', db, '--dry-run']),
  ]);
  for (const r of [a, b, text, plainText]) assert.equal(r.code, 0, r.stderr);
  type Row = { key: string; precision: string };
  const p = (JSON.parse(a.stdout) as { runs: Row[] }).runs;
  const q = (JSON.parse(b.stdout) as { runs: Row[] }).runs;
  assert.equal(q.length, 2 * p.length);
  assert.deepEqual(
    q.filter((r) => r.precision === 'fp32').map((r) => r.key),
    p.map((r) => r.key),
  );
  assert.ok(p.every((r) => r.precision === 'fp32'));
  assert.equal(q.filter((r) => r.precision === 'mixed').length, p.length);
  const header = (s: string) => s.split('\n').find((l) => l.startsWith('kind'))!;
  assert.match(header(text.stdout), /\bprecision\b/);
  assert.doesNotMatch(header(plainText.stdout), /\bprecision\b/);
});
