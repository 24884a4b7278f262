// The store's typed records: what the runner passes in and what the report and `check` read back.
import type { ArtifactKind, ModelFamily, RunKind, RunStatus } from './names.js';

export type TagValue = string | number | boolean | null;
/** Tag keys are listed in names.ts (TAG); values are JSON scalars. */
export type Tags = Record<string, TagValue>;

/** Where and how a result was computed. `config` is the resolved config the run key was hashed from. */
export interface Provenance {
  config?: unknown;
  runKey?: string;
  seed?: number;
  /** `precision`: the matmul precision the run computed at ('fp32' or 'mixed'; absent in runs stored before it was recorded: fp32) */
  backend?: { name: string; version?: string | null; device?: string | null; precision?: string };
  /** npm package name → version actually loaded */
  packages?: Record<string, string>;
  gitCommit?: string | null;
  host?: string;
  toolVersion?: string;
  node?: string;
  [key: string]: unknown;
}

export interface RunInput {
  /** SHA-256 hex (64 lowercase characters) of the canonical resolved config */
  key: string;
  /** experiment name (created with an empty spec if upsertExperiment was not called first) */
  experiment?: string;
  kind: RunKind;
  /** model label as shown in reports, e.g. 'DiT-S/2', 'FPDM-S/2 (1/1)' */
  model: string;
  family?: ModelFamily | null;
  /** key of the run this one builds on (a sample run's train run) */
  parentKey?: string | null;
  seed?: number | null;
  /** resolved config (stored as canonical JSON) */
  config: unknown;
  /** run-level tags inherited by every metric row of the run (budget, steps, iters, …; see TAG) */
  tags?: Tags;
  provenance?: Provenance;
}

export interface RunRecord {
  id: number;
  key: string;
  experiment: string | null;
  kind: RunKind;
  model: string;
  family: ModelFamily | null;
  parentKey: string | null;
  status: RunStatus;
  seed: number | null;
  config: unknown;
  tags: Tags;
  provenance: Provenance;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  heartbeatAt: string | null;
  owner: { pid: number; host: string } | null;
  attempts: number;
  error: string | null;
}

export interface ClaimOptions {
  /** re-run a `failed` or `diverged` run (default: report it as `failed`) */
  retryFailed?: boolean;
  /** a running run of another host without a heartbeat for this long is taken over (default 15 min) */
  staleAfterMs?: number;
}

export type ClaimResult =
  /** this process now owns the run; `previous` null = new run, 'running' = resume an interrupted one */
  | { outcome: 'claimed'; previous: RunStatus | null; run: RunRecord }
  /** already completed: skip it */
  | { outcome: 'done'; run: RunRecord }
  /** another live process is doing it */
  | { outcome: 'busy'; run: RunRecord }
  /** failed or diverged earlier and retryFailed was not set */
  | { outcome: 'failed'; run: RunRecord };

export interface MetricInput {
  /** a name from METRIC in names.ts */
  name: string;
  value: number;
  /** unit from METRIC_UNITS ('' for dimensionless) */
  unit?: string;
  /** integer x of a curve (optimizer step, iteration); omit for scalars */
  step?: number | null;
  tags?: Tags;
}

export interface MetricRecord {
  runId: number;
  runKey: string;
  experiment: string | null;
  kind: RunKind;
  model: string;
  family: ModelFamily | null;
  seed: number | null;
  status: RunStatus;
  finishedAt: string | null;
  name: string;
  value: number;
  unit: string;
  step: number | null;
  /** run tags + seed + the row's own tags (the row's win) */
  tags: Tags;
}

export interface ArtifactInput {
  kind: ArtifactKind;
  /** file path (resolved against the current directory); stored relative to the database's directory */
  path: string;
  sha256?: string;
  bytes?: number;
  tags?: Tags;
}

export interface ArtifactRecord {
  id: number;
  runId: number;
  runKey: string;
  experiment: string | null;
  model: string;
  family: ModelFamily | null;
  kind: ArtifactKind;
  /** as stored (relative to the database's directory, or absolute) */
  path: string;
  absPath: string;
  sha256: string;
  bytes: number;
  /** run tags + seed + the artifact's own tags */
  tags: Tags;
  createdAt: string;
}

export interface ExperimentRecord {
  id: number;
  name: string;
  spec: string;
  createdAt: string;
}

export interface RunFilter {
  experiment?: string;
  status?: RunStatus[];
  kinds?: RunKind[];
  models?: string[];
  key?: string;
}

export interface MetricFilter extends RunFilter {
  names?: string[];
}
