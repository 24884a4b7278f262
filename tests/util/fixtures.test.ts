// The golden fixtures in tests/fixtures are the reference's files, byte for byte: every file named in
// SHA256SUMS has that digest as the tests read it (a compressed one after unpacking), and every file
// at the top of tests/fixtures is named there.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_FIXTURES, fixture, fixtureDigests, sha256 } from '../helpers.js';

test('every golden fixture has the SHA-256 recorded in tests/fixtures/SHA256SUMS', () => {
  const digests = fixtureDigests();
  assert.ok(digests.size >= 15, `SHA256SUMS lists ${digests.size} files`);
  for (const [name, want] of digests) assert.equal(sha256(readFileSync(fixture(name))), want, name);
});

test('every file in tests/fixtures is listed in SHA256SUMS (compressed ones under their unpacked name)', () => {
  const digests = fixtureDigests();
  for (const name of readdirSync(REPO_FIXTURES)) {
    if (name === 'README.md' || name === 'SHA256SUMS' || statSync(join(REPO_FIXTURES, name)).isDirectory()) continue;
    const listed = digests.has(name) || (name.endsWith('.br') && digests.has(name.slice(0, -3)));
    assert.ok(listed, `tests/fixtures/${name} is not in SHA256SUMS`);
  }
});
