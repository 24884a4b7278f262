// Shared test helpers: where the golden fixtures live, and backend set-up.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { brotliDecompressSync } from 'node:zlib';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend, type BackendName, type InitOptions } from '../src/backends/index.js';
import { Rng } from '../src/util/rng.js';

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

/**
 * The backends the suites run over: the CPU ones every machine has, or the comma-separated list in
 * FPDM_TEST_BACKENDS (`webgpu` alone on a GPU or SwiftShader: `npm run test:webgpu` sets it).
 */
export const TEST_BACKENDS: BackendName[] = (process.env.FPDM_TEST_BACKENDS?.split(',') as
  BackendName[] | undefined) ?? ['cpu', 'wasm'];

export async function useBackend(name: BackendName, opts: InitOptions = {}): Promise<void> {
  await initBackend(name, opts);
  if (name === 'webgpu') failOnGpuErrors();
}

interface GpuErrorTarget {
  addEventListener(type: 'uncapturederror', listener: (ev: { error: { message: string } }) => void): void;
}
const watchedDevices = new WeakSet<object>();

/**
 * A WebGPU error (a WGSL shader that does not compile, an invalid binding or submit) is not thrown:
 * Dawn prints it, the command buffer holding the kernel is dropped, and its output is whatever the
 * pooled buffer held, which a comparison can even match (a TF.js int32 transpose did, at 0 difference).
 * So every such error fails the test file (the runner reports a file whose process exits non-zero).
 */
function failOnGpuErrors(): void {
  const device = (tf.backend() as unknown as { device?: GpuErrorTarget & object }).device;
  if (!device || watchedDevices.has(device)) return;
  watchedDevices.add(device);
  device.addEventListener('uncapturederror', (ev) => {
    if (process.exitCode === 1) return; // said once; Dawn prints every error itself
    process.exitCode = 1;
    process.stderr.write(
      `WebGPU error, so this test file fails (a kernel did not run): ${ev.error.message.split('\n')[0]}\n`,
    );
  });
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

/**
 * max |a − b| / max |b| over two tensors of one shape, read asynchronously (webgpu under Node cannot
 * read synchronously); Infinity when a holds a non-finite value.
 */
export async function tensorRelErr(a: tf.Tensor, b: tf.Tensor): Promise<number> {
  if (a.shape.join(',') !== b.shape.join(',')) throw new Error(`shapes [${a.shape}] vs [${b.shape}]`);
  const [av, bv] = [await a.data(), await b.data()];
  let scale = 0;
  let diff = 0;
  for (let i = 0; i < av.length; i++) {
    if (!Number.isFinite(av[i]!)) return Infinity;
    scale = Math.max(scale, Math.abs(bv[i]!));
    diff = Math.max(diff, Math.abs(av[i]! - bv[i]!));
  }
  return diff / Math.max(scale, 1e-12);
}

/** A float32 tensor of N(0, scale²) values drawn from Rng(seed). */
export function randomTensor(seed: string, shape: number[], scale = 1): tf.Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return tf.tensor(
    new Rng(seed).normals(n).map((v) => v * scale),
    shape,
  );
}
