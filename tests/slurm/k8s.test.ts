// examples/k8s: the Indexed Job and the collect Job parse, have the fields an Indexed Job needs (one
// shard per completion index, bundles on a shared volume), and their shell commands, run with a
// recording stand-in for `fpdm-exp`, call the CLI exactly as the Slurm scripts do (same shard
// arguments, same bundle layout, same collect/report/check steps).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { shardOption } from '../../src/cli/commands/plan.js';
import { ROOT } from '../cli.js';
import { tempDir } from '../experiments/harness.js';

const K8S = join(ROOT, 'examples', 'k8s');
const SLURM = join(ROOT, 'scripts', 'slurm');

// the parts of the Kubernetes objects the tests read (the tests check that they are there)
interface Container {
  command: string[];
  args: string[];
  env?: { name: string; value: string }[];
  volumeMounts: { name: string; mountPath: string }[];
}
interface Volume {
  name: string;
  persistentVolumeClaim?: { claimName: string };
  configMap?: { name: string };
}
interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string };
  spec: {
    accessModes?: string[];
    completionMode?: string;
    completions?: number;
    parallelism?: number;
    backoffLimitPerIndex?: number;
    template: { spec: { restartPolicy: string; containers: Container[]; volumes: Volume[] } };
  };
}

function load(file: string): Manifest[] {
  const docs = parseAllDocuments(readFileSync(join(K8S, file), 'utf8'));
  for (const d of docs) assert.deepEqual(d.errors, [], `${file}: YAML errors`);
  return docs.map((d) => d.toJS() as Manifest);
}

/** A stand-in `fpdm-exp` on PATH that appends its arguments (one JSON array per call) to a log. */
function stub(): { bin: string; calls: () => string[][]; env: NodeJS.ProcessEnv } {
  const dir = tempDir('fpdm-stub-');
  const bin = join(dir, 'bin');
  mkdirSync(bin);
  const log = join(dir, 'calls.jsonl');
  writeFileSync(
    join(bin, 'fpdm-exp'),
    `#!${process.execPath}\nrequire('fs').appendFileSync(${JSON.stringify(log)}, JSON.stringify(process.argv.slice(2)) + '\\n');\n`,
  );
  chmodSync(join(bin, 'fpdm-exp'), 0o755);
  const env: NodeJS.ProcessEnv = { ...process.env, PATH: `${bin}:${process.env.PATH}` };
  delete env.FPDM_EXP;
  delete env.FPDM_SHARDS;
  return {
    bin,
    env,
    calls: () =>
      existsSync(log)
        ? readFileSync(log, 'utf8')
            .trim()
            .split('\n')
            .map((l) => JSON.parse(l) as string[])
        : [],
  };
}

/** Runs a container's command (`command` + `args`) with `env`, its mount paths mapped to local directories. */
function runContainer(c: Container, env: NodeJS.ProcessEnv, mounts: Record<string, string>): void {
  assert.deepEqual(c.command, ['/bin/sh', '-c'], 'the command is a shell script in args');
  assert.equal(c.args.length, 1);
  let script = String(c.args[0]);
  for (const [from, to] of Object.entries(mounts)) script = script.split(from).join(to);
  const containerEnv = Object.fromEntries((c.env ?? []).map((e) => [e.name, e.value]));
  const r = spawnSync('/bin/sh', ['-c', script], { env: { ...env, ...containerEnv }, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
}

test('the PVC is ReadWriteMany and both jobs mount it at /results', () => {
  const pvc = load('results-pvc.yaml')[0]!;
  assert.equal(pvc.kind, 'PersistentVolumeClaim');
  assert.ok(pvc.spec.accessModes?.includes('ReadWriteMany'), 'shards on several nodes need a ReadWriteMany volume');
  for (const file of ['shards-job.yaml', 'collect-job.yaml']) {
    const pod = load(file)[0]!.spec.template.spec;
    const vol = pod.volumes.find((v) => v.persistentVolumeClaim?.claimName === pvc.metadata.name);
    assert.ok(vol, `${file} does not use the claim ${pvc.metadata.name}`);
    assert.ok(
      pod.containers[0]!.volumeMounts.some((m) => m.name === vol.name && m.mountPath === '/results'),
      `${file}: /results is not the claim`,
    );
  }
});

test('Indexed Job: one shard per completion index, each into its own bundle; same arguments as the Slurm array task', () => {
  const job = load('shards-job.yaml')[0]!;
  assert.equal(job.apiVersion, 'batch/v1');
  assert.equal(job.kind, 'Job');
  assert.equal(job.spec.completionMode, 'Indexed');
  const n = job.spec.completions ?? 0;
  assert.ok(Number.isInteger(n) && n >= 2);
  const parallelism = job.spec.parallelism ?? 0;
  assert.ok(parallelism >= 1 && parallelism <= n);
  const pod = job.spec.template.spec;
  // backoffLimitPerIndex is only valid with restartPolicy Never (the Job API rejects it otherwise)
  assert.equal(pod.restartPolicy, 'Never');
  assert.ok(Number.isInteger(job.spec.backoffLimitPerIndex));
  const c = pod.containers[0]!;
  assert.equal(c.env?.find((e) => e.name === 'FPDM_SHARDS')?.value, String(n), 'FPDM_SHARDS must equal completions');
  const specMount = c.volumeMounts.find((m) => m.mountPath === '/spec');
  assert.ok(
    specMount && pod.volumes.find((v) => v.name === specMount.name)?.configMap?.name,
    'the spec comes from a config map',
  );

  const k8s = stub();
  const slurm = stub();
  const out = tempDir('fpdm-k8s-');
  for (const i of [0, 1, n - 1]) {
    runContainer(
      c,
      { ...k8s.env, JOB_COMPLETION_INDEX: String(i) },
      { '/results': join(out, 'k8s'), '/spec/spec.yaml': 'SPEC' },
    );
    const r = spawnSync('bash', [join(SLURM, 'run-shards.sbatch'), 'SPEC', join(out, 'slurm')], {
      env: {
        ...slurm.env,
        SLURM_ARRAY_TASK_ID: String(i),
        SLURM_ARRAY_TASK_COUNT: String(n),
        SLURM_ARRAY_JOB_ID: '7',
        FPDM_BACKEND: 'auto',
      },
      encoding: 'utf8',
    });
    assert.equal(r.status, 0, r.stderr);
  }
  const calls = k8s.calls();
  assert.equal(calls.length, 3);
  calls.forEach((args, j) => {
    const i = [0, 1, n - 1][j]!;
    assert.deepEqual(args, [
      '--backend',
      'auto',
      'run',
      'SPEC',
      '--shard',
      `${i}/${n}`,
      '--db',
      join(out, 'k8s', `shard-${i}`, 'fpdm.sqlite'),
      '--progress',
      'plain',
    ]);
    assert.deepEqual(shardOption(args[5]!), { index: i, count: n });
  });
  // the Slurm task runs the same command, with its results directory in place of /results
  assert.deepEqual(
    slurm.calls(),
    calls.map((a) => a.map((s) => s.split(join(out, 'k8s')).join(join(out, 'slurm')))),
  );
});

test('collect Job: collect, report and (with a baseline) check, as the Slurm collect job', () => {
  const job = load('collect-job.yaml')[0]!;
  assert.equal(job.kind, 'Job');
  assert.notEqual(job.spec.completionMode, 'Indexed');
  assert.equal(job.spec.template.spec.restartPolicy, 'Never');
  const c = job.spec.template.spec.containers[0]!;
  const out = tempDir('fpdm-k8s-collect-');
  for (const side of ['k8s', 'slurm'])
    for (const i of [0, 1]) mkdirSync(join(out, side, `shard-${i}`), { recursive: true });
  for (const baseline of ['', 'BASELINE']) {
    const k8s = stub();
    runContainer({ ...c, env: [{ name: 'FPDM_BASELINE', value: baseline }] }, k8s.env, {
      '/results': join(out, 'k8s'),
    });
    const slurm = stub();
    const r = spawnSync('bash', [join(SLURM, 'collect.sbatch'), join(out, 'slurm'), ...(baseline ? [baseline] : [])], {
      env: slurm.env,
      encoding: 'utf8',
    });
    assert.equal(r.status, 0, r.stderr);
    const db = join(out, 'k8s', 'fpdm.sqlite');
    const want = [
      ['collect', join(out, 'k8s', 'shard-0') + '/', join(out, 'k8s', 'shard-1') + '/', '--db', db],
      ['report', '--db', db, '--out', join(out, 'k8s', 'report')],
      ...(baseline ? [['check', '--baseline', baseline, '--db', db]] : []),
    ];
    assert.deepEqual(k8s.calls(), want);
    assert.deepEqual(
      slurm.calls(),
      want.map((a) => a.map((s) => s.split(join(out, 'k8s')).join(join(out, 'slurm')))),
    );
  }
});
