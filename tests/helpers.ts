// Shared test helpers: where the golden fixtures live, and backend set-up.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { brotliDecompressSync } from 'node:zlib';
import { initBackend, type BackendName } from '../src/backends/index.js';

/** The golden fixtures kept in the repository (tests/fixtures/README.md says where each came from). */
export const REPO_FIXTURES = resolve(import.meta.dirname, 'fixtures');

/** Where fixtures are looked up first: FPDM_FIXTURES when set (another copy of them), else tests/fixtures. */
export const FIXTURES = process.env.FPDM_FIXTURES ?? REPO_FIXTURES;

/** SHA-256 of every fixture file as used by the tests (after decompression), from tests/fixtures/SHA256SUMS. */
export function fixtureDigests(): Map<string, string> {
  const lines = readFileSync(join(REPO_FIXTURES, 'SHA256SUMS'), 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '');
  return new Map(
    lines.map((l) => {
      const [hash, name] = l.split(/\s+\*?/, 2) as [string, string];
      return [name, hash];
    }),
  );
}

export function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/**
 * `name.br` (brotli) unpacked once to `name` beside it, or under the OS temp directory when that folder
 * is read-only; the result is checked against SHA256SUMS. Written to a temporary file and renamed, so
 * concurrent test processes never read a partial file.
 */
function unpack(packed: string, name: string): string {
  const beside = packed.slice(0, -'.br'.length);
  if (existsSync(beside)) return beside;
  const fallback = join(tmpdir(), 'fpdm-exp-fixtures', name);
  if (existsSync(fallback)) return fallback;
  const bytes = brotliDecompressSync(readFileSync(packed));
  const want = fixtureDigests().get(name);
  const got = sha256(bytes);
  if (want !== got)
    throw new Error(
      `golden fixture ${packed} unpacks to SHA-256 ${got}, but tests/fixtures/SHA256SUMS says ${want ?? '(no entry)'}`,
    );
  for (const target of [beside, fallback]) {
    const tmp = `${target}.${process.pid}.tmp`;
    try {
      mkdirSync(dirname(target), { recursive: true });
      writeFileSync(tmp, bytes);
      renameSync(tmp, target);
      return target;
    } catch {
      // read-only folder: try the next place
    }
  }
  throw new Error(`cannot unpack golden fixture ${packed}: neither ${beside} nor ${fallback} is writable`);
}

/**
 * The path of golden fixture `name` (e.g. 'dit_tiny.safetensors'): from FPDM_FIXTURES when it has the
 * file, else from tests/fixtures; a brotli-compressed `name.br` there is unpacked on first use.
 */
export function fixture(name: string): string {
  for (const dir of [...new Set([FIXTURES, REPO_FIXTURES])]) {
    const p = join(dir, name);
    if (existsSync(p)) return p;
    if (existsSync(`${p}.br`)) return unpack(`${p}.br`, name);
  }
  throw new Error(
    `golden fixture ${name} is missing from ${REPO_FIXTURES}${FIXTURES === REPO_FIXTURES ? '' : ` and ${FIXTURES}`}`,
  );
}

/** CPU backends every machine has; the same suites run over each. FPDM_TEST_BACKENDS=webgpu adds the GPU one. */
export const TEST_BACKENDS: BackendName[] = (process.env.FPDM_TEST_BACKENDS?.split(',') as
  BackendName[] | undefined) ?? ['cpu', 'wasm'];

export async function useBackend(name: BackendName): Promise<void> {
  await initBackend(name);
}

/** max |a - b| over two equal-length arrays */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** max |a - b| / max(|b|, floor) */
export function maxRelDiff(a: ArrayLike<number>, b: ArrayLike<number>, floor = 1e-12): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!) / Math.max(Math.abs(b[i]!), floor));
  return m;
}
