// Bad paths and bad option values are refused before any work starts, with one message naming the
// path (or listing the allowed values) and exit 2; `collect` creates a missing output directory as
// `run` does; `fid A B` works a second time when both statistics come from the cache; and a command
// on the auto backend prints nothing of Dawn's GPU probe on a machine without a GPU.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import type { Command, Option } from 'commander';
import { buildProgram, main } from '../../src/cli/main.js';
import { writeStatsNpz } from '../../src/metrics/stats_io.js';
import { fixture } from '../helpers.js';
import { ROOT, runCli } from '../cli.js';
import { buildKnownDb } from '../report/known-db.js';

/** The CLI in this process, capturing stderr only (the test runner reports through stdout). */
async function cli(args: string[]): Promise<{ code: number; stderr: string }> {
  const err: string[] = [];
  const ew = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((s: string | Uint8Array) => (err.push(String(s)), true)) as typeof process.stderr.write;
  try {
    return { code: await main(['node', 'fpdm-exp', ...args]), stderr: err.join('') };
  } finally {
    process.stderr.write = ew;
  }
}

let dir: string;
let file: string; // a regular file that paths are routed through
let known: string; // an fpdm-exp database
const spec = join(ROOT, 'experiments', 'quickstart.yaml');

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'fpdm-cli-faults-'));
  file = join(dir, 'a-file.txt');
  writeFileSync(file, 'not a directory\n');
  known = await buildKnownDb(join(dir, 'known'));
});

async function refused(args: string[], re: RegExp): Promise<void> {
  const started = performance.now();
  const r = await cli(args);
  assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
  assert.match(r.stderr, /^error: /, args.join(' '));
  assert.match(r.stderr, re, args.join(' '));
  assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
  assert.ok(performance.now() - started < 20_000, `${args.join(' ')}: refused before any work`);
}

test('run: a --db or --artifacts path through a file, or naming a directory, is refused before the spec is even planned', async () => {
  const through = join(file, 'fpdm.sqlite');
  await refused(
    ['run', spec, '--db', through],
    new RegExp(`database \\(--db\\) '${through}': its directory '${file}' is a file, not a directory`),
  );
  await refused(['run', spec, '--db', dir], /database \(--db\) '.*' is a directory: give a file path inside it/);
  const db = join(dir, 'run1', 'fpdm.sqlite');
  await refused(
    ['run', spec, '--db', db, '--artifacts', file],
    new RegExp(`--artifacts directory '${file}' is a file, not a directory`),
  );
  await refused(
    ['run', spec, '--db', db, '--artifacts', join(file, 'ckpts')],
    /--artifacts directory '.*ckpts' cannot be created: '.*a-file\.txt' is a file/,
  );
  assert.ok(!existsSync(join(dir, 'run1')), 'nothing was created for the refused runs');
  // the same spec with good paths gets past the checks (a missing spec shows the order: paths first, then the spec)
  await refused(['run', join(dir, 'no-spec.yaml'), '--db', db], /no-spec\.yaml' does not exist/);
});

test('report: --out through a file or onto a file is refused before the database is read; a missing --db is named', async () => {
  await refused(
    ['report', '--db', known, '--out', file],
    /report --out directory '.*a-file\.txt' is a file, not a directory/,
  );
  await refused(
    ['report', '--db', known, '--out', join(file, 'r')],
    /report --out directory '.*a-file\.txt\/r' cannot be created: '.*a-file\.txt' is a file/,
  );
  await refused(
    ['report', '--db', join(dir, 'absent.sqlite'), '--out', join(dir, 'r')],
    /database '.*absent\.sqlite' does not exist/,
  );
  assert.ok(!existsSync(join(dir, 'r')));
});

test('collect: creates a missing output directory as run does; refuses a --db through a file', async () => {
  const target = join(dir, 'new', 'deeper', 'merged.sqlite');
  const r = await cli(['collect', known, '--db', target]);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(statSync(target).isFile());
  await refused(
    ['collect', known, '--db', join(file, 'm.sqlite')],
    /database \(--db\) '.*a-file\.txt\/m\.sqlite': its directory '.*a-file\.txt' is a file/,
  );
  await refused(['collect', join(dir, 'nope'), '--db', join(dir, 'm2.sqlite')], /bundle '.*nope' does not exist/);
});

test('fid and check: output and input paths are checked before any statistics are computed', async () => {
  const a = join(dir, 'a.npz');
  writeStatsNpz(a, { mu: new Float64Array([0, 0]), sigma: new Float64Array([1, 0, 0, 1]), dim: 2 });
  await refused(
    ['fid', a, a, '--save-stats', join(file, 's.npz')],
    /--save-stats file '.*a-file\.txt\/s\.npz': its directory '.*a-file\.txt' is a file/,
  );
  await refused(['fid', a, a, '--save-stats', dir], /--save-stats file '.*' is a directory/);
  await refused(
    ['fid', a, a, '--weights', join(dir, 'none.pth')],
    /weights file \(--weights\) '.*none\.pth' does not exist/,
  );
  await refused(['fid', a, join(dir, 'b-missing')], /b-missing' does not exist/);
  await refused(
    ['check', '--baseline', join(dir, 'nobase.json'), '--db', known],
    /baseline file \(--baseline\) '.*nobase\.json' does not exist/,
  );
});

test('train, sample, features and data grid: an --out or --save path through a file is refused before any compute', async () => {
  const imgs = join(dir, 'imgs-out');
  mkdirSync(imgs);
  await sharp({ create: { width: 8, height: 8, channels: 3, background: { r: 1, g: 2, b: 3 } } })
    .png()
    .toFile(join(imgs, '0.png'));
  const bad = join(file, 'x');
  await refused(
    ['train', '--preset', 'DiT-S/2', '--data', 'synthetic', '--steps', '1', '--batch-size', '1', '--out', bad],
    /--out checkpoint directory '.*a-file\.txt\/x' cannot be created: '.*a-file\.txt' is a file/,
  );
  await refused(
    ['sample', '--ckpt', dir, '--budget', '2', '--out', join(bad, 'g.png')],
    /--out grid '.*g\.png': its directory '.*a-file\.txt\/x' cannot be created/,
  );
  await refused(
    ['sample', '--ckpt', dir, '--budget', '2', '--out', join(dir, 'g.png'), '--save', file],
    /--save directory '.*a-file\.txt' is a file/,
  );
  await refused(
    ['features', '--images', imgs, '--out', join(bad, 'f.safetensors')],
    /--out file '.*f\.safetensors': its directory/,
  );
  await refused(['data', 'grid', 'synthetic', '--out', join(bad, 'g.png')], /--out file '.*g\.png': its directory/);
});

test('a read-only directory is refused for --db, --artifacts and --out', async (t) => {
  if (process.getuid?.() === 0) {
    // root passes every permission check, so chmod cannot make a directory read-only for this
    // process; the path-through-a-file cases above exercise the same checks
    t.skip('running as root: permission bits do not stop root');
    return;
  }
  const ro = join(dir, 'ro');
  mkdirSync(ro);
  chmodSync(ro, 0o555);
  try {
    await refused(['run', spec, '--db', join(ro, 'x.sqlite')], /cannot be written to: it is not writable/);
    await refused(
      ['run', spec, '--db', join(dir, 'w', 'x.sqlite'), '--artifacts', join(ro, 'a')],
      /cannot be created inside '.*ro': it is not writable/,
    );
    await refused(
      ['report', '--db', known, '--out', join(ro, 'r')],
      /cannot be created inside '.*ro': it is not writable/,
    );
    const rofile = join(dir, 'ro.sqlite');
    writeFileSync(rofile, '');
    chmodSync(rofile, 0o444);
    await refused(['collect', known, '--db', rofile], /cannot be written: it is read-only/);
  } finally {
    chmodSync(ro, 0o755);
  }
});

/** every option of every (sub)command, with the command path */
function allOptions(c: Command, path: string[] = []): { path: string[]; option: Option }[] {
  const here = [...path, c.name()];
  return [...c.options.map((option) => ({ path: here, option })), ...c.commands.flatMap((s) => allOptions(s, here))];
}

test('every option with a fixed set of values rejects an unknown one, listing the allowed values', async () => {
  const program = await buildProgram();
  const withChoices = allOptions(program).filter((o) => o.option.argChoices);
  assert.ok(withChoices.length >= 10, `found ${withChoices.length} options with choices`);
  assert.ok(
    withChoices.some((o) => o.option.long === '--progress'),
    '--progress has its choices',
  );
  for (const { path, option } of withChoices) {
    const args = [...path.slice(1), option.long!, 'no-such-value'];
    const r = await cli(args);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    for (const c of option.argChoices!) assert.ok(r.stderr.includes(c), `${args.join(' ')}: lists '${c}': ${r.stderr}`);
  }
  // options whose values are checked by their own parser (they also accept a range or a special form)
  const parsed: [string[], string[]][] = [
    [
      ['--backend', 'gpu', 'backends'],
      ['auto', 'wasm', 'cpu', 'webgpu', 'tensorflow'],
    ],
    [
      ['fid', 'a', 'b', '--mode', 'clean'],
      ['pytorch-fid', 'tf'],
    ],
    [
      ['data', 'info', 'mnist', '--channels', '2'],
      ['1', '3'],
    ],
    [['weights', 'fetch', 'vgg'], ['inception']],
  ];
  for (const [args, allowed] of parsed) {
    const r = await cli(args);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    for (const c of allowed) assert.ok(r.stderr.includes(c), `${args.join(' ')}: lists '${c}': ${r.stderr}`);
  }
});

test('a compute command on the auto backend prints nothing of the GPU probe where no GPU exists: just its own message', async () => {
  const imgs = join(dir, 'imgs');
  mkdirSync(imgs);
  await sharp({ create: { width: 8, height: 8, channels: 3, background: { r: 10, g: 20, b: 30 } } })
    .png()
    .toFile(join(imgs, '0.png'));
  const weights = join(dir, 'weights.pth');
  writeFileSync(weights, 'these are not weights');
  // initialises the auto backend (to run the network), then fails on the weights file
  const r = runCli(['fid', imgs, imgs, '--weights', weights, '--no-cache']);
  assert.equal(r.code, 2, r.stderr);
  assert.doesNotMatch(r.stderr, /Vulkan|Dawn|Warning/i);
  // the log line comes after the backend was initialised, so the probe did run
  assert.deepEqual(
    r.stderr
      .trim()
      .split('\n')
      .map((l) => l.replace(/ .*/, '')),
    ['loading', 'error:'],
    r.stderr,
  );
  assert.match(r.stderr, /\nerror: .*weights\.pth/);
});

test(
  'fid A B twice between the same folders: the second run takes both statistics from the cache and succeeds',
  { timeout: 600_000 },
  async () => {
    const a = join(dir, 'fa');
    const b = join(dir, 'fb');
    for (const [d, shade] of [
      [a, 40],
      [b, 200],
    ] as const) {
      mkdirSync(d);
      for (let i = 0; i < 2; i++)
        await sharp({ create: { width: 16, height: 16, channels: 3, background: { r: shade, g: 30 * i, b: 90 } } })
          .png()
          .toFile(join(d, `${i}.png`));
    }
    const env = { ...process.env, XDG_CACHE_HOME: join(dir, 'cache') };
    const args = ['--backend', 'wasm', 'fid', a, b, '--weights', fixture('inception_fid_ternary.legacy.pt'), '--json'];
    const first = runCli(args, { env });
    assert.equal(first.code, 0, first.stderr);
    const second = runCli(args, { env });
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stderr, /using cached statistics[\s\S]*using cached statistics/);
    const [v1, v2] = [first, second].map(
      (r) => JSON.parse(r.stdout) as { value: number; inputs: { cached: boolean }[]; backend?: { name: string } },
    );
    assert.equal(v2!.value, v1!.value, 'the same FID from cached statistics');
    assert.deepEqual(
      v2!.inputs.map((i) => i.cached),
      [true, true],
    );
    assert.equal(v1!.backend?.name, 'wasm', 'the first run records the backend that ran the network');
    assert.equal(v2!.backend, undefined, 'no network ran the second time, so no backend is claimed');
  },
);
