// `fpdm-exp collect DIR|DB... --db results/fpdm.sqlite`: merges result bundles (the databases written
// by `run --shard i/n --db <bundle>/fpdm.sqlite`, with their artifacts beside them) into one database.
// Merging is keyed by run key, so collecting a bundle twice changes nothing. Sample grids and other
// small artifacts are copied beside the database (--copy-artifacts), so the merged results outlive
// their bundles; checkpoints stay referenced where they are unless `--copy-artifacts all`.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Option, type Command } from 'commander';
import {
  ARTIFACT_COPY_MODES,
  describeShardGaps,
  mergeDatabase,
  shardCoverage,
  type ArtifactCopyMode,
  type MergeResult,
  type ShardCoverage,
} from '../../store/merge.js';
import { inspectDatabase, openStore } from '../../store/store.js';
import { prepareFileTarget } from '../../util/fs.js';
import { UserError } from '../../util/errors.js';
import { emitJson, log, warn } from '../../util/log.js';
import { formatTable } from '../table.js';
import { DEFAULT_DB } from './plan.js';

export interface CollectOptions {
  sources: string[];
  db: string;
  /** artifact files copied beside the database (default 'samples': all but checkpoints) */
  copyArtifacts?: ArtifactCopyMode;
  /** merge even when shards of a sharded experiment are missing or unfinished (warns instead of refusing) */
  allowPartial?: boolean;
}

export interface CollectResult {
  db: string;
  bundles: ({ source: string } & MergeResult)[];
  /** per sharded experiment: the shards the bundles (and the database) hold, missing and unfinished ones */
  shards: ShardCoverage[];
}

/** The databases (*.sqlite) a source names: the file itself, or those directly inside / one level below a directory. */
export function bundleDatabases(source: string): string[] {
  if (!existsSync(source))
    throw new UserError(
      `bundle '${source}' does not exist: give the directories (or .sqlite files) that 'run --shard' wrote`,
    );
  if (statSync(source).isFile()) return [source];
  const found: string[] = [];
  const scan = (dir: string, depth: number) => {
    for (const name of readdirSync(dir).sort()) {
      const p = join(dir, name);
      const st = statSync(p);
      if (st.isFile() && name.endsWith('.sqlite')) found.push(p);
      else if (st.isDirectory() && depth > 0 && name !== 'artifacts') scan(p, depth - 1);
    }
  };
  scan(source, 1);
  if (found.length === 0)
    throw new UserError(`bundle directory '${source}' holds no .sqlite database (looked in it and one level below)`);
  return found;
}

export async function run(opts: CollectOptions): Promise<CollectResult> {
  if (opts.sources.length === 0) throw new UserError('collect needs at least one bundle directory or database');
  const target = resolve(opts.db);
  const sources = opts.sources.flatMap(bundleDatabases).filter((p) => resolve(p) !== target);
  // every bundle and the target are checked before anything is merged: a bundle that is not an
  // fpdm-exp database stops the command with the target untouched
  for (const s of sources) {
    const found = inspectDatabase(s);
    if (found === 'empty')
      throw new UserError(
        `bundle database '${s}' is empty: it holds no runs (remove it, or give the bundles that 'run --shard' wrote)`,
      );
  }
  const targetExists = existsSync(target);
  if (targetExists) inspectDatabase(opts.db);
  const shards = shardCoverage(targetExists ? [...sources, target] : sources);
  const gaps = describeShardGaps(shards);
  if (gaps.length && !opts.allowPartial) {
    throw new UserError(
      `collect: incomplete set of shards, nothing merged: ${gaps.join('; ')}. Re-run those shards (into the same bundles: they resume) and collect again, or pass --allow-partial to merge what is there`,
    );
  }
  for (const g of gaps) warn(`merging an incomplete set of shards: ${g}`);
  prepareFileTarget(opts.db, 'database (--db)'); // creates its directory, as `run` does
  const store = openStore(opts.db);
  try {
    const bundles = sources.map((source) => {
      const r = mergeDatabase(source, store, { copyArtifacts: opts.copyArtifacts ?? 'samples' });
      log(
        `collected ${source}: ${r.added} added, ${r.replaced} replaced, ${r.skipped} already present, ${r.unfinished} unfinished (not merged)`,
      );
      return { source, ...r };
    });
    return { db: opts.db, bundles, shards };
  } finally {
    store.close();
  }
}

export function register(program: Command): void {
  program
    .command('collect')
    .description('merge result bundles (databases written by `run --shard i/n`) into one database')
    .argument('<bundles...>', 'bundle directories or .sqlite files')
    .option('--db <path>', 'database to merge into', DEFAULT_DB)
    .addOption(
      new Option(
        '--copy-artifacts <what>',
        'artifact files copied beside the database (the rest stay referenced in their bundles): all, samples (all but checkpoints) or none',
      )
        .choices([...ARTIFACT_COPY_MODES])
        .default('samples'),
    )
    .option(
      '--allow-partial',
      'merge even if shards of a sharded experiment are missing or unfinished (default: refuse, naming them)',
    )
    .option('--json', 'print JSON on stdout')
    .action(
      async (
        sources: string[],
        opts: { db: string; copyArtifacts: ArtifactCopyMode; allowPartial?: boolean; json?: boolean },
      ) => {
        const r = await run({
          sources,
          db: opts.db,
          copyArtifacts: opts.copyArtifacts,
          allowPartial: opts.allowPartial,
        });
        if (opts.json) return emitJson(r);
        process.stdout.write(
          formatTable(
            ['bundle', 'added', 'replaced', 'present', 'unfinished'],
            r.bundles.map((b) => [b.source, b.added, b.replaced, b.skipped, b.unfinished]),
          ),
        );
      },
    );
}
