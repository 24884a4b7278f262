// The tool's version and the git commit it was built from (for `--version` and provenance).
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Root of the package (works from src/ under tsx and from dist/ after the build). */
export const PACKAGE_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

export function toolVersion(): string {
  return (JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
}

let commit: string | null | undefined;

/**
 * The git commit of the package's checkout (with `-dirty` when it has uncommitted changes); outside
 * git, the commit recorded in a COMMIT file at the package root (written when a bundle is built for a
 * machine without the repository, scripts/gpu/prepare.sh); otherwise null.
 */
export function gitCommit(): string | null {
  if (commit !== undefined) return commit;
  try {
    const opts = {
      cwd: PACKAGE_ROOT,
      stdio: ['ignore', 'pipe', 'ignore'] as ['ignore', 'pipe', 'ignore'],
      encoding: 'utf8' as const,
    };
    const head = execFileSync('git', ['rev-parse', 'HEAD'], opts).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], opts).trim().length > 0;
    commit = head + (dirty ? '-dirty' : '');
  } catch {
    const file = join(PACKAGE_ROOT, 'COMMIT');
    const recorded = existsSync(file) ? readFileSync(file, 'utf8').trim() : '';
    commit = /^[0-9a-f]{40}(-dirty)?$/.test(recorded) ? recorded : null;
  }
  return commit;
}
