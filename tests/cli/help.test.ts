// Lazy commands: the top-level help names every command from the registry without loading any
// command module (nor TF.js); each registry entry's help term and summary equal its module's own.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { Command, Help } from 'commander';
import { COMMANDS } from '../../src/cli/commands/index.js';
import { buildProgram, invokedCommand } from '../../src/cli/main.js';
import { ROOT } from '../cli.js';

test("each registry entry's term and summary are its module's own (the help is the same loaded or not)", async () => {
  const help = new Help();
  for (const c of COMMANDS) {
    const program = new Command('fpdm-exp');
    (await c.load()).register(program, () => ({ backend: 'cpu', quiet: true }));
    assert.deepEqual(
      program.commands.map((x) => x.name()),
      [c.name],
      `${c.name}: the module registers exactly this command`,
    );
    const cmd = program.commands[0]!;
    assert.equal(help.subcommandTerm(cmd), c.term, `${c.name}: help term`);
    assert.equal(cmd.description(), c.summary, `${c.name}: summary`);
  }
});

test('the invoked command is the first word after the global options (or after help)', () => {
  assert.equal(invokedCommand(['--help']), undefined);
  assert.equal(invokedCommand([]), undefined);
  assert.equal(invokedCommand(['--backend', 'wasm', '-q', 'run', 'spec.yaml', '--db', 'x']), 'run');
  assert.equal(invokedCommand(['--backend=cpu', 'plan', 'a.yaml']), 'plan');
  assert.equal(invokedCommand(['help', 'train']), 'train');
  assert.equal(invokedCommand(['weights', 'fetch', 'inception']), 'weights');
});

test('top-level help lists every command as the full program does; --help and backends do not load TF.js', async () => {
  const full = await buildProgram();
  const lazy = await buildProgram(['--help']);
  assert.equal(lazy.helpInformation(), full.helpInformation());
  const code = [
    "import { buildProgram } from './src/cli/main.ts';",
    "await buildProgram(['--help']);",
    "await buildProgram(['backends']);",
    "process.stdout.write(String('_tfengine' in globalThis));",
  ].join('\n');
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
    cwd: ROOT,
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, 'false', 'TF.js (its engine global) was loaded');
});
