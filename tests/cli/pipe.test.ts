// A reader that closes the pipe early (`fpdm-exp inspect FILE | head -1`) ends the command quietly with
// exit 0, as command-line tools do, not with an unhandled EPIPE and a stack.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { ROOT } from '../cli.js';

test('stdout closed by its reader after the first line: exit 0, no stack', async () => {
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      resolve(ROOT, 'src', 'cli', 'run.ts'),
      'inspect',
      resolve(ROOT, 'tests', 'fixtures', 'dit_tiny.safetensors'),
    ],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  // read the first chunk, then close our end as `head -1` does
  await new Promise<void>((done) =>
    child.stdout.once('data', () => {
      child.stdout.destroy();
      done();
    }),
  );
  const code = await new Promise<number | null>((done) => child.on('close', (c) => done(c)));
  assert.equal(code, 0, stderr);
  assert.doesNotMatch(stderr, /EPIPE|Unhandled|at .*\(/);
});
