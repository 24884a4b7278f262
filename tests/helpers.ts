// Shared test helpers: where the golden fixtures live, and backend set-up.
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { initBackend, type BackendName } from '../src/backends/index.js';

/** `../shared/fixtures` beside the project root (CI lays shared/ there too); FPDM_FIXTURES overrides. */
export const FIXTURES = process.env.FPDM_FIXTURES ?? resolve(import.meta.dirname, '..', '..', 'shared', 'fixtures');

export function fixture(name: string): string {
  const p = join(FIXTURES, name);
  if (!existsSync(p)) throw new Error(`golden fixture ${p} is missing: tests read ../shared/fixtures (set FPDM_FIXTURES to override)`);
  return p;
}

/** CPU backends every machine has; the same suites run over each. FPDM_TEST_BACKENDS=webgpu adds the GPU one. */
export const TEST_BACKENDS: BackendName[] = (process.env.FPDM_TEST_BACKENDS?.split(',') as BackendName[] | undefined) ?? ['cpu', 'wasm'];

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
