// `fpdm-exp backends [--json]`: which TF.js backends this tool knows, whether each is usable here and why not.
import type { Command } from 'commander';
import { probeBackends, type BackendInfo } from '../../backends/index.js';
import { emitJson } from '../../util/log.js';
import { formatTable } from '../table.js';

export async function run(): Promise<BackendInfo[]> {
  return probeBackends();
}

export function register(program: Command): void {
  program
    .command('backends')
    .description('list the compute backends (wasm, cpu, webgpu, tensorflow), whether each is usable here, and why not')
    .option('--json', 'print JSON on stdout')
    .action(async (opts: { json?: boolean }) => {
      const infos = await run();
      if (opts.json) return emitJson(infos);
      process.stdout.write(
        formatTable(
          ['backend', 'usable', 'version', 'device / reason'],
          infos.map((b) => [
            b.name,
            b.usable ? 'yes' : 'no',
            b.version ?? '-',
            b.usable ? `${b.device ?? ''}${b.threads ? `, ${b.threads} threads` : ''}` : (b.reason ?? ''),
          ]),
        ),
      );
    });
}
