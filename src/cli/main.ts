// Entry point: argv → commander → command functions. This file is the only catch site: UserError
// exits 2, RegressionError exits 3, anything else is a bug (exit 1, with its stack).
import { Command, CommanderError, Option } from 'commander';
import { BACKEND_NAMES, parseBackendChoice } from '../backends/index.js';
import { EXIT, RegressionError, UserError } from '../util/errors.js';
import { inputErrorOf } from '../util/input-errors.js';
import { setQuiet } from '../util/log.js';
import { gitCommit, toolVersion } from '../util/version.js';
import type { GlobalOptions } from './context.js';
import { COMMANDS } from './commands/index.js';

export function buildProgram(): Command {
  const program = new Command('fpdm-exp');
  program
    .description('Reproduce, check and extend Fixed Point Diffusion Models (FPDM) against DiT')
    .version(`${toolVersion()} (commit ${gitCommit() ?? 'unknown'})`, '-V, --version', 'print the version and git commit')
    .addOption(new Option('--backend <name>', `compute backend: auto, ${BACKEND_NAMES.join(', ')}`).default('auto').argParser(parseBackendChoice))
    .option('-q, --quiet', 'log less on stderr')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });
  program.hook('preAction', () => setQuiet(Boolean(program.opts().quiet)));
  const globals = (): GlobalOptions => program.opts() as GlobalOptions;
  for (const register of COMMANDS) register(program, globals);
  // subcommands inherit exit override so commander never calls process.exit itself
  for (const c of program.commands) c.exitOverride();
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return EXIT.ok;
  } catch (caught) {
    const e = inputErrorOf(caught) ?? caught; // library/OS errors about the input become UserErrors
    if (e instanceof CommanderError) {
      // --help and --version end here with code 0; usage errors were already printed by commander
      return e.exitCode === 0 ? EXIT.ok : EXIT.user;
    }
    if (e instanceof UserError) {
      process.stderr.write(`error: ${e.message}\n`);
      return EXIT.user;
    }
    if (e instanceof RegressionError) {
      process.stderr.write(`regression: ${e.message}\n`);
      return EXIT.regression;
    }
    process.stderr.write(`internal error (a bug, please report it with this trace):\n${(e as Error)?.stack ?? String(e)}\n`);
    return EXIT.bug;
  }
}
