// The scale-out path on a real scheduler: a one-node Slurm cluster (tests/slurm/cluster.ts) runs a
// small experiment through the shipped scripts (scripts/slurm/submit.sh → run-shards.sbatch as a
// 2-task array, collect.sbatch after it). One task is cancelled during its run: the other shard's
// results stay intact, the collect job never merges a partial set, and re-submitting the cancelled task
// resumes it; the collect job queued with it then merges a database with the same runs and metrics
// as an unsharded run of the same spec, writes the report and checks a baseline made from that run.
// Skips, saying why, only where Slurm's packages are not installed (CI installs them: .ci/run).
import assert from 'node:assert/strict';
import { spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { ROOT } from '../cli.js';
import { checkpointStep, cli, query, results, startCli, tempDir, waitFor, writeSpec } from '../experiments/harness.js';
import { edit } from '../experiments/specs.js';
import { Cluster, slurmMissing } from './cluster.js';

// CI's regression experiment, made smaller (one budget, fewer samples) and checkpointing every 2
// steps so that the cancelled task has a checkpoint to resume from
const CI_TINY = readFileSync(join(ROOT, 'results', 'baselines', 'ci-tiny.spec.yaml'), 'utf8');
const SPEC = edit(
  edit(edit(CI_TINY, 'budgets: [3, 6]', 'budgets: [3]'), 'samples: 64', 'samples: 32'),
  '  steps: 20\n',
  '  steps: 20\n  checkpointEvery: 2\n',
);

// checks of the collect job's `fpdm-exp check`; expected values come from the unsharded run (--update)
const BASELINE = `version: 1
checks:
${[
  ['DiT train loss at step 20', 'train_loss', '{ experiment: ci-tiny, family: dit, kind: train, step: 20 }', 'lower'],
  ['FPDM train loss at step 20', 'train_loss', '{ experiment: ci-tiny, family: fpdm, kind: train, step: 20 }', 'lower'],
  ['DiT fd_mnist at budget 3', 'fd_mnist', '{ experiment: ci-tiny, family: dit, tags: { budget: 3 } }', 'lower'],
  ['FPDM fd_mnist at budget 3', 'fd_mnist', '{ experiment: ci-tiny, family: fpdm, tags: { budget: 3 } }', 'lower'],
  ['FPDM params', 'params', '{ experiment: ci-tiny, family: fpdm, kind: train }', 'equal'],
]
  .map(
    ([name, metric, select, better]) =>
      `  - name: ${name}\n    metric: ${metric}\n    select: ${select}\n    expected: 0\n    tolerance: { abs: 0 }\n    better: ${better}\n`,
  )
  .join('')}`;

const skip = slurmMissing() ?? false;

test(
  'Slurm job array: shards, a cancelled task re-submitted, collect + report == unsharded run',
  { skip, timeout: 600_000 },
  async (t) => {
    const started = Date.now();
    const cluster = await Cluster.start();
    const children: ChildProcess[] = [];
    const stop = () => {
      for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
      cluster.stop();
    };
    // the daemons, their jobs and our own child processes end whatever happens: a failed assertion
    // (t.after), the process exiting, or the runner being interrupted
    process.once('exit', stop);
    for (const sig of ['SIGINT', 'SIGTERM'] as const)
      process.once(sig, () => (stop(), process.exit(128 + (sig === 'SIGINT' ? 2 : 15))));
    t.after(stop);
    t.diagnostic(`cluster up in ${((Date.now() - started) / 1000).toFixed(1)} s (${cluster.dir})`);

    const dir = tempDir('fpdm-slurm-run-');
    const spec = writeSpec(dir, 'slurm-tiny.spec.yaml', SPEC);
    const out = join(dir, 'results');
    const env = {
      ...cluster.env,
      FPDM_EXP: `${process.execPath} --import tsx ${join(ROOT, 'src', 'cli', 'run.ts')}`, // this checkout's source
      FPDM_BACKEND: 'wasm',
      SBATCH_MEM_PER_NODE: '1G', // the scripts' defaults may exceed a small CI machine; Slurm's variable overrides them
    };
    const submit = (args: string[]) => {
      const r = spawnSync('bash', [join(ROOT, 'scripts', 'slurm', 'submit.sh'), ...args], {
        cwd: ROOT,
        env,
        encoding: 'utf8',
      });
      assert.equal(r.status, 0, `submit.sh ${args.join(' ')}: ${r.stdout}${r.stderr}`);
      const m = /array job (\d+) .*collect job (\d+)/.exec(r.stdout);
      assert.ok(m, `submit.sh printed no job ids: ${r.stdout}`);
      return { array: m[1]!, collect: m[2]! };
    };
    const logOf = (name: string) => readFileSync(join(out, 'logs', name), 'utf8');

    // the unsharded reference runs beside the cluster's jobs
    const refProc = startCli([
      '--backend',
      'wasm',
      'run',
      spec,
      '--db',
      join(dir, 'ref', 'fpdm.sqlite'),
      '--progress',
      'none',
      '--no-report',
    ]);
    children.push(refProc.child);
    const reference = refProc.done;

    // 1. the array and its collect job; task 1 is cancelled in the middle of its training
    const first = submit([spec, '2', out]);
    const b0 = join(out, 'shard-0');
    const b1 = join(out, 'shard-1');
    const caught = await waitFor(() => checkpointStep(b1) >= 2, 240_000);
    assert.ok(
      caught,
      `shard 1 never reached a checkpoint: ${JSON.stringify(cluster.jobs(first.array))}\n${cluster.logs()}`,
    );
    cluster.cmd('scancel', [`${first.array}_1`]);
    const ended = await cluster.wait([first.array, first.collect], 240_000);
    const state = (id: string) => ended.find((j) => j.id === id)?.state;
    assert.equal(
      state(`${first.array}_0`),
      'COMPLETED',
      JSON.stringify(ended) + logOf(`fpdm-shard-${first.array}_0.out`),
    );
    assert.equal(state(`${first.array}_1`), 'CANCELLED', JSON.stringify(ended));
    assert.equal(
      state(first.collect),
      'CANCELLED',
      `the collect job was not cancelled with its failed dependency: ${JSON.stringify(ended)}`,
    );
    assert.ok(!existsSync(join(out, 'fpdm.sqlite')), 'a partial set was merged');
    const intact = results(join(b0, 'fpdm.sqlite'));
    assert.ok(
      intact.runs.length > 0 && intact.runs.every((r) => r.includes(' completed ')),
      'shard 0 did not complete its runs',
    );
    const open = query<{ n: number }>(
      join(b1, 'fpdm.sqlite'),
      "SELECT count(*) AS n FROM runs WHERE status IN ('pending', 'running')",
    )![0]!.n;
    assert.ok(open >= 1, 'the cancelled shard finished before it was cancelled');
    const refused = await cli(['collect', b0, b1, '--db', join(dir, 'partial.sqlite')]);
    assert.equal(refused.code, 2, refused.stderr);
    assert.match(refused.stderr, /shard 1\/2 has \d+ unfinished runs?/);

    // 2. a baseline of the unsharded run (values filled in by `check --update`) for the collect job's check
    const ref = await reference;
    assert.equal(ref.code, 0, ref.stderr);
    const baseline = writeSpec(dir, 'baseline.yaml', BASELINE);
    const update = await cli(['check', '--baseline', baseline, '--db', join(dir, 'ref', 'fpdm.sqlite'), '--update']);
    assert.equal(update.code, 0, update.stderr);

    // 3. re-submit the cancelled task: it resumes, and the collect job queued with it merges, reports and checks
    const second = submit(['--only', '1', '--baseline', baseline, spec, '2', out]);
    const done = await cluster.wait([second.array, second.collect], 300_000);
    for (const j of done)
      assert.equal(
        `${j.state} ${j.exitCode}`,
        'COMPLETED 0:0',
        `${j.id}: ${JSON.stringify(done)}\n${logOf(`fpdm-collect-${second.collect}.out`)}`,
      );
    assert.match(logOf(`fpdm-shard-${second.array}_1.out`), /resuming interrupted (train|sample) run/);
    assert.match(logOf(`fpdm-shard-${second.array}_1.out`), /shard 1\/2 of /);
    assert.deepEqual(results(join(b0, 'fpdm.sqlite')), intact, "shard 0's bundle changed");
    const collectLog = logOf(`fpdm-collect-${second.collect}.out`);
    assert.ok(existsSync(join(out, 'report', 'index.html')), `no report: ${collectLog}`);
    for (const name of ['DiT fd_mnist at budget 3', 'FPDM train loss at step 20'])
      assert.match(collectLog, new RegExp(name), 'check did not run');

    const want = results(join(dir, 'ref', 'fpdm.sqlite'));
    assert.equal(want.runs.length, 4);
    assert.ok(want.runs.every((r) => r.includes(' completed ')));
    const got = results(join(out, 'fpdm.sqlite'));
    assert.deepEqual(got.runs, want.runs);
    assert.deepEqual(got.metrics, want.metrics);
    assert.ok(
      want.metrics.some((m) => / fd_mnist /.test(m)),
      'the comparison has no fd_mnist value',
    );
    t.diagnostic(`Slurm test wall time ${((Date.now() - started) / 1000).toFixed(1)} s`);
  },
);
