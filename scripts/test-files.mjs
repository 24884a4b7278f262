// The test files of the repository: every *.test.ts under a folder, in sorted order (shared by
// scripts/run-tests.mjs and scripts/test-webgpu.mjs; Node 20's `--test` takes no globs).
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

export function testFiles(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...testFiles(p));
    else if (name.endsWith('.test.ts')) out.push(p);
  }
  return out;
}
