// The SD-VAE fixtures in tests/fixtures/vae are the reference's files byte for byte: each has the
// SHA-256 recorded in that folder's README, and every file there is listed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { sha256 } from '../helpers.js';
import { VAE_FIXTURES } from './helpers.js';

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => (statSync(join(dir, n)).isDirectory() ? files(join(dir, n)) : [join(dir, n)]));
}

test('tests/fixtures/vae: every file has the SHA-256 its README records, and every file is listed', () => {
  const readme = readFileSync(join(VAE_FIXTURES, 'README.md'), 'utf8');
  const recorded = new Map([...readme.matchAll(/^\| `([^`]+)` \| `([0-9a-f]{64})` \|$/gm)].map((m) => [m[1]!, m[2]!]));
  assert.ok(recorded.size >= 12, `README records ${recorded.size} digests`);
  for (const [name, want] of recorded) assert.equal(sha256(readFileSync(join(VAE_FIXTURES, name))), want, name);
  for (const f of files(VAE_FIXTURES)) {
    const rel = relative(VAE_FIXTURES, f).split('\\').join('/');
    if (rel !== 'README.md') assert.ok(recorded.has(rel), `${rel} is not in the README's digest table`);
  }
});
