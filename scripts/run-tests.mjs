#!/usr/bin/env node
// Runs every tests/**/*.test.ts with Node's built-in test runner (through tsx), so CI reads the
// runner's own pass/fail summary. Node 20's `--test` takes no globs, hence this file list.
// Usage: node scripts/run-tests.mjs [substring filter ...]
import { spawnSync } from 'node:child_process';
import { testFiles } from './test-files.mjs';

const filters = process.argv.slice(2);
const files = testFiles('tests').filter((f) => filters.length === 0 || filters.some((s) => f.includes(s)));
if (files.length === 0) {
  console.error(`no test files match ${filters.join(' ')}`);
  process.exit(1);
}
const r = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-concurrency=2', ...files], {
  stdio: 'inherit',
});
process.exit(r.status ?? 1);
