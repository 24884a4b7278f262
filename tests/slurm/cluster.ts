// A one-node Slurm cluster for tests, from the distribution's packages (Debian: slurmctld, slurmd,
// slurm-client, munge), run entirely as the current user in a temporary directory: its own munge key
// and socket, its own slurm.conf (this machine's hostname, CPUs and memory from `slurmd -C`), its own
// ports, state and logs; nothing under /etc or /run is read or written. Settings that work in a
// container without systemd or cgroups: proctrack/linuxproc, task/none, no accounting.
// Clients reach it through SLURM_CONF (see `env`); `stop()` cancels its jobs and ends every daemon it
// started, by the pids they wrote.
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';

export const SLURM_TOOLS = ['munged', 'slurmctld', 'slurmd', 'sbatch', 'squeue', 'scontrol', 'scancel', 'sinfo'];

/** Path of each command found on PATH (or in /usr/sbin, where Debian puts the daemons); null if absent. */
export function findTool(name: string): string | null {
  const dirs = [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/sbin'];
  for (const d of dirs) if (d && existsSync(join(d, name))) return join(d, name);
  return null;
}

/** Why the cluster cannot be started here, or null when all its programs are installed. */
export function slurmMissing(): string | null {
  const missing = SLURM_TOOLS.filter((t) => !findTool(t));
  return missing.length
    ? `Slurm is not installed (${missing.join(', ')} not found); on Debian/Ubuntu: apt-get install slurmctld slurmd slurm-client munge (CI's .ci/run does this)`
    : null;
}

async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => res(port));
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface JobInfo {
  id: string;
  state: string;
  exitCode: string;
  reason: string;
}

const TERMINAL = new Set([
  'COMPLETED',
  'FAILED',
  'CANCELLED',
  'TIMEOUT',
  'OUT_OF_MEMORY',
  'NODE_FAIL',
  'PREEMPTED',
  'BOOT_FAIL',
  'DEADLINE',
]);

export class Cluster {
  readonly dir: string;
  /** environment for Slurm's clients (and the jobs they submit) */
  readonly env: NodeJS.ProcessEnv;
  private readonly pidFiles: string[];
  private stopped = false;

  private constructor(dir: string, env: NodeJS.ProcessEnv, pidFiles: string[]) {
    this.dir = dir;
    this.env = env;
    this.pidFiles = pidFiles;
  }

  /** Starts munged, slurmctld and slurmd; resolves when the node is idle (or throws with the daemons' logs). */
  static async start(): Promise<Cluster> {
    const dir = mkdtempSync(join(tmpdir(), 'fpdm-slurm-'));
    const etc = join(dir, 'etc');
    const run = join(dir, 'run');
    const log = join(dir, 'log');
    for (const d of [etc, run, log, join(dir, 'state'), join(dir, 'spool')]) mkdirSync(d, { recursive: true });
    chmodSync(etc, 0o700);
    chmodSync(run, 0o755);
    const key = join(etc, 'munge.key');
    writeFileSync(key, randomBytes(1024), { mode: 0o600 });
    const socket = join(run, 'munge.socket');
    const pid = (name: string) => join(run, `${name}.pid`);
    const cluster = new Cluster(dir, {}, [pid('slurmd'), pid('slurmctld'), pid('munged')]);
    try {
      execFileSync(
        findTool('munged')!,
        [
          '--force',
          `--socket=${socket}`,
          `--key-file=${key}`,
          `--log-file=${join(log, 'munged.log')}`,
          `--pid-file=${pid('munged')}`,
          `--seed-file=${join(run, 'munged.seed')}`,
        ],
        { stdio: 'pipe' },
      );
      // this machine as slurmd sees it: NodeName=<hostname> CPUs=… Boards=… … RealMemory=…
      const node = execFileSync(findTool('slurmd')!, ['-C'], { encoding: 'utf8' })
        .split('\n')
        .find((l) => l.startsWith('NodeName='));
      if (!node) throw new Error('slurmd -C printed no NodeName= line');
      const host = /^NodeName=(\S+)/.exec(node)![1]!;
      const user = userInfo().username;
      const [ctldPort, slurmdPort] = [await freePort(), await freePort()];
      const conf = join(etc, 'slurm.conf');
      writeFileSync(
        conf,
        [
          'ClusterName=fpdmtest',
          `SlurmctldHost=${host}(127.0.0.1)`,
          `SlurmctldPort=${ctldPort}`,
          `SlurmdPort=${slurmdPort}`,
          `SlurmUser=${user}`,
          `SlurmdUser=${user}`,
          'AuthType=auth/munge',
          'CredType=cred/munge',
          `AuthInfo=socket=${socket}`,
          `StateSaveLocation=${join(dir, 'state')}`,
          `SlurmdSpoolDir=${join(dir, 'spool')}`,
          `SlurmctldPidFile=${pid('slurmctld')}`,
          `SlurmdPidFile=${pid('slurmd')}`,
          `SlurmctldLogFile=${join(log, 'slurmctld.log')}`,
          `SlurmdLogFile=${join(log, 'slurmd.log')}`,
          'ProctrackType=proctrack/linuxproc',
          'TaskPlugin=task/none',
          'JobAcctGatherType=jobacct_gather/none',
          'AccountingStorageType=accounting_storage/none',
          'JobCompType=jobcomp/none',
          'MpiDefault=none',
          'SwitchType=switch/none',
          'SchedulerType=sched/builtin',
          'SelectType=select/cons_tres',
          'SelectTypeParameters=CR_Core',
          'ReturnToService=2',
          'MinJobAge=3600',
          'KillWait=5',
          `${node} NodeAddr=127.0.0.1 State=UNKNOWN`,
          'PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP',
          '',
        ].join('\n'),
      );
      Object.assign(cluster.env, { ...process.env, SLURM_CONF: conf });
      execFileSync(findTool('slurmctld')!, ['-i'], { env: cluster.env, stdio: 'pipe' });
      execFileSync(findTool('slurmd')!, [], { env: cluster.env, stdio: 'pipe' });
      const end = Date.now() + 60_000;
      for (;;) {
        const r = spawnSync('sinfo', ['-h', '-o', '%t'], { env: cluster.env, encoding: 'utf8' });
        if (r.status === 0 && r.stdout.trim() === 'idle') break;
        if (Date.now() > end)
          throw new Error(`the node did not become idle within 60 s (sinfo: ${r.stdout}${r.stderr})`);
        await sleep(250);
      }
      return cluster;
    } catch (e) {
      const logs = cluster.logs();
      cluster.stop();
      throw new Error(`${e instanceof Error ? e.message : String(e)}\n${logs}`);
    }
  }

  /** Runs a Slurm client command; its stdout (throws with stderr on a non-zero exit). */
  cmd(name: string, args: string[]): string {
    return execFileSync(name, args, { env: this.env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  }

  /** State of every job (array tasks one by one) that `id` names, from scontrol. */
  jobs(id: string): JobInfo[] {
    const r = spawnSync('scontrol', ['show', 'job', '-o', id], { env: this.env, encoding: 'utf8' });
    if (r.status !== 0) return [];
    return r.stdout
      .split('\n')
      .filter((l) => l.startsWith('JobId='))
      .map((l) => {
        const f = (k: string) => new RegExp(`(?:^| )${k}=(\\S*)`).exec(l)?.[1] ?? '';
        const task = f('ArrayTaskId');
        return {
          id: task ? `${f('ArrayJobId')}_${task}` : f('JobId'),
          state: f('JobState'),
          exitCode: f('ExitCode'),
          reason: f('Reason'),
        };
      });
  }

  /** Waits until every job `ids` names has ended; their final states (throws after `timeoutMs`). */
  async wait(
    ids: string[],
    timeoutMs: number,
    until: (jobs: JobInfo[]) => boolean = (js) => js.length > 0 && js.every((j) => TERMINAL.has(j.state)),
  ): Promise<JobInfo[]> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const js = ids.flatMap((id) => this.jobs(id));
      if (until(js)) return js;
      if (Date.now() > end)
        throw new Error(
          `jobs ${ids.join(', ')} did not finish within ${timeoutMs / 1000} s: ${JSON.stringify(js)}\n${this.logs()}`,
        );
      await sleep(500);
    }
  }

  /** The tails of the daemons' logs, for failure messages. */
  logs(): string {
    return ['munged', 'slurmctld', 'slurmd']
      .map((n) => {
        const p = join(this.dir, 'log', `${n}.log`);
        return existsSync(p)
          ? `--- ${n}.log\n${readFileSync(p, 'utf8').split('\n').slice(-15).join('\n')}`
          : `--- ${n}.log (none)`;
      })
      .join('\n');
  }

  /** Cancels every job of the cluster, ends slurmd, slurmctld and munged (SIGTERM, then SIGKILL) and removes its directory. Idempotent. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    if (this.env.SLURM_CONF) {
      spawnSync('scancel', ['--user', userInfo().username], { env: this.env, timeout: 10_000 });
      const end = Date.now() + 15_000;
      while (Date.now() < end) {
        const q = spawnSync('squeue', ['-h'], { env: this.env, encoding: 'utf8', timeout: 5_000 });
        if (q.status !== 0 || q.stdout.trim() === '') break;
        spawnSync('sleep', ['0.5']);
      }
    }
    for (const f of this.pidFiles) {
      if (!existsSync(f)) continue;
      const pid = Number(readFileSync(f, 'utf8').trim());
      if (!Number.isInteger(pid) || pid <= 1) continue;
      signal(pid, 'SIGTERM');
      const end = Date.now() + 10_000;
      while (alive(pid) && Date.now() < end) spawnSync('sleep', ['0.2']);
      if (alive(pid)) signal(pid, 'SIGKILL');
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

/** The process exists and is not a zombie (a daemon's parent may be an init that does not reap). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return true;
  }
}
