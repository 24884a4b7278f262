// The results store's public surface: open a database, claim and finish runs, add metrics and
// artifacts, query them back, merge bundles. Names of metrics and tags live in names.ts.
export { openStore, Store, DEFAULT_STALE_AFTER_MS, type OpenOptions } from './store.js';
export {
  mergeDatabase,
  ARTIFACT_COPY_MODES,
  type ArtifactCopyMode,
  type MergeOptions,
  type MergeResult,
} from './merge.js';
export { SCHEMA_VERSION, MIGRATIONS, migrate, type Migration } from './schema.js';
export { canonicalJson, sha256Hex } from './json.js';
export * from './names.js';
export type * from './types.js';
