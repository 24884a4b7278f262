// `fpdm-exp weights fetch inception [--url URL] [--json]`: downloads the FID Inception weights into the
// XDG cache with a SHA-256 check (resuming a partial download); `fpdm-exp weights where`: where the
// tool looks for them and whether they are there.
import { existsSync } from 'node:fs';
import type { Command } from 'commander';
import { cachedWeightsPath, fetchWeights, KNOWN_WEIGHTS, type FetchResult } from '../../metrics/weights.js';
import { UserError } from '../../util/errors.js';
import { emitJson, log } from '../../util/log.js';

export interface WeightsFetchOptions {
  name: string;
  url?: string;
}

export async function run(o: WeightsFetchOptions): Promise<FetchResult> {
  const spec = KNOWN_WEIGHTS[o.name];
  if (!spec)
    throw new UserError(`weights fetch: unknown weights '${o.name}'; known: ${Object.keys(KNOWN_WEIGHTS).join(', ')}`);
  let last = 0;
  return fetchWeights(spec, {
    url: o.url,
    onProgress: (bytes, total) => {
      const now = Date.now();
      if (now - last > 2000) {
        log(`${spec.file}: ${(bytes / 1e6).toFixed(1)}${total ? ` / ${(total / 1e6).toFixed(1)}` : ''} MB`);
        last = now;
      }
    },
  });
}

export function where(): {
  name: string;
  file: string;
  path: string;
  present: boolean;
  url: string;
  sha256Prefix: string;
}[] {
  return Object.values(KNOWN_WEIGHTS).map((s) => {
    const path = cachedWeightsPath(s);
    return { name: s.name, file: s.file, path, present: existsSync(path), url: s.url, sha256Prefix: s.sha256Prefix };
  });
}

export function register(program: Command): void {
  const w = program.command('weights').description('pretrained weights the metrics need (the FID Inception network)');
  w.command('fetch')
    .description(
      'download weights into the cache ($XDG_CACHE_HOME/fpdm-exp) with a SHA-256 check; resumes partial downloads',
    )
    .argument('<name>', `which weights: ${Object.keys(KNOWN_WEIGHTS).join(', ')}`)
    .option('--url <url>', 'download from this mirror instead of the pytorch-fid release')
    .option('--json', 'print JSON on stdout')
    .action(async (name: string, opts: { url?: string; json?: boolean }) => {
      const r = await run({ name, url: opts.url });
      if (opts.json) return emitJson(r);
      process.stdout.write(`${r.path} (${r.status}, sha256 ${r.sha256})\n`);
    });
  w.command('where')
    .description('where the weights are looked for, and whether they are present')
    .option('--json', 'print JSON on stdout')
    .action((opts: { json?: boolean }) => {
      const r = where();
      if (opts.json) return emitJson(r);
      for (const e of r)
        process.stdout.write(
          `${e.name}: ${e.path} (${e.present ? 'present' : `missing: fpdm-exp weights fetch ${e.name}, or place ${e.file} there by hand`})\n`,
        );
    });
  for (const c of w.commands) c.exitOverride();
}
