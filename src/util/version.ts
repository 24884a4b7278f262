// The tool's version and the git commit it was built from (for `--version` and provenance).
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Root of the package (works from src/ under tsx and from dist/ after the build). */
export const PACKAGE_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

export function toolVersion(): string {
  return (JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
}

let commit: string | null | undefined;

/** The git commit of the package's checkout (with `-dirty` when it has uncommitted changes), or null outside git. */
export function gitCommit(): string | null {
  if (commit !== undefined) return commit;
  try {
    const opts = { cwd: PACKAGE_ROOT, stdio: ['ignore', 'pipe', 'ignore'] as ['ignore', 'pipe', 'ignore'], encoding: 'utf8' as const };
    const head = execFileSync('git', ['rev-parse', 'HEAD'], opts).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], opts).trim().length > 0;
    commit = head + (dirty ? '-dirty' : '');
  } catch {
    commit = null;
  }
  return commit;
}
