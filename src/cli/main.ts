// Entry point: argv → commander → command functions. This file is the only catch site: UserError
// exits 2, RegressionError exits 3, anything else is a bug (exit 1, with its stack).
import { Command, CommanderError, Help, Option } from 'commander';
import {
  BACKEND_NAMES,
  MIXED_PRECISION_COVERS,
  parseBackendChoice,
  parsePrecision,
  PRECISIONS,
} from '../backends/index.js';
import { EXIT, RegressionError, UserError } from '../util/errors.js';
import { inputErrorOf } from '../util/input-errors.js';
import { setQuiet } from '../util/log.js';
import { gitCommit, toolVersion } from '../util/version.js';
import type { GlobalOptions } from './context.js';
import { COMMANDS } from './commands/index.js';

/**
 * The command that `args` (argv without node and the script) invokes: the first word that is not a
 * global option (or the word after `help`); undefined when there is none.
 */
export function invokedCommand(args: readonly string[]): string | undefined {
  const words: string[] = [];
  for (let i = 0; i < args.length && words.length < 2; i++) {
    const a = args[i]!;
    if (a === '--backend' || a === '--precision')
      i++; // its value
    else if (!a.startsWith('-')) words.push(a);
    if (words.length === 1 && words[0] !== 'help') break;
  }
  return words[0] === 'help' ? words[1] : words[0];
}

/**
 * The program with every command: the one that `args` invokes (all of them when `args` is omitted)
 * loaded and registered in full, the others as stubs that only name themselves in the top-level help.
 */
export async function buildProgram(args?: readonly string[]): Promise<Command> {
  const program = new Command('fpdm-exp');
  const wanted = args === undefined ? undefined : invokedCommand(args);
  // the commit costs two git processes: only asked for when the version is printed
  const showVersion = args === undefined || args.includes('-V') || args.includes('--version');
  program
    .description('Reproduce, check and extend Fixed Point Diffusion Models (FPDM) against DiT')
    .version(
      showVersion ? `${toolVersion()} (commit ${gitCommit() ?? 'unknown'})` : '',
      '-V, --version',
      'print the version and git commit',
    )
    .addOption(
      new Option('--backend <name>', `compute backend: auto, ${BACKEND_NAMES.join(', ')}`)
        .default('auto')
        .argParser(parseBackendChoice),
    )
    .addOption(
      new Option(
        '--precision <p>',
        `matmul precision of the model's own GPU kernels: ${PRECISIONS.join(', ')} (default fp32; for run and plan, the spec's precision, which this overrides); mixed (webgpu only): ${MIXED_PRECISION_COVERS}`,
      ).argParser(parsePrecision),
    )
    .option('-q, --quiet', 'log less on stderr')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });
  const stubTerms = new Map<Command, string>();
  const help = new Help();
  program.configureHelp({ subcommandTerm: (cmd) => stubTerms.get(cmd) ?? help.subcommandTerm(cmd) });
  program.hook('preAction', () => setQuiet(Boolean(program.opts().quiet)));
  const globals = (): GlobalOptions => program.opts() as GlobalOptions;
  for (const c of COMMANDS) {
    if (wanted === undefined ? args === undefined : c.name === wanted) (await c.load()).register(program, globals);
    else
      stubTerms.set(program.command(c.name).description(c.summary).allowUnknownOption().allowExcessArguments(), c.term);
  }
  // subcommands inherit exit override so commander never calls process.exit itself
  for (const c of program.commands) c.exitOverride();
  return program;
}

let pipeGuarded = false;

/**
 * `fpdm-exp inspect FILE | head`: when the reader closes stdout, stop quietly with exit 0, as
 * command-line tools do, instead of an unhandled EPIPE with a stack. Other stdout errors stay errors.
 */
function stopQuietlyOnClosedPipe(): void {
  if (pipeGuarded) return;
  pipeGuarded = true;
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(EXIT.ok);
    throw e;
  });
}

export async function main(argv: string[]): Promise<number> {
  stopQuietlyOnClosedPipe();
  const program = await buildProgram(argv.slice(2));
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
    process.stderr.write(
      `internal error (a bug, please report it with this trace):\n${(e as Error)?.stack ?? String(e)}\n`,
    );
    return EXIT.bug;
  }
}
