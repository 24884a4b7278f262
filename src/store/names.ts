// The one place that names what the store holds: metric names, their units, tag keys and the
// enumerations of run kinds, statuses and artifact kinds. The experiment runner writes exactly these
// names and the report and `check` read exactly these, so a rename happens here or nowhere.

/** What a run did. A `train` run produces a checkpoint; `sample` runs sample (and usually measure) from one. */
export const RUN_KINDS = ['train', 'sample', 'measure'] as const;
export type RunKind = (typeof RUN_KINDS)[number];

export const RUN_STATUSES = ['pending', 'running', 'completed', 'failed', 'diverged'] as const;
export type RunStatus = (typeof RUN_STATUSES)[number];

export const ARTIFACT_KINDS = ['checkpoint', 'sample_grid', 'samples', 'figure'] as const;
export type ArtifactKind = (typeof ARTIFACT_KINDS)[number];

/** Model family of a run: the report compares DiT against FPDM. */
export const MODEL_FAMILIES = ['dit', 'fpdm'] as const;
export type ModelFamily = (typeof MODEL_FAMILIES)[number];

/**
 * Metric names. One metric row is one value; curves are several rows with `step` set.
 * Units are the strings in METRIC_UNITS (the runner passes them with each row).
 */
export const METRIC = {
  /** Fréchet Inception Distance (pytorch-fid or tf preprocessing: tag `preprocessing`). */
  fid: 'fid',
  /** Fréchet distance in the feature space of the small MNIST classifier; never called FID. */
  fdMnist: 'fd_mnist',
  /** Kernel Inception Distance: mean over subsets (its std over subsets is `kid_std`). */
  kid: 'kid',
  kidStd: 'kid_std',
  /** KID (same estimator) in the MNIST classifier's feature space; its std over subsets is `kid_mnist_std`. */
  kidMnist: 'kid_mnist',
  kidMnistStd: 'kid_mnist_std',
  precision: 'precision',
  recall: 'recall',
  /** Inception Score: mean over splits (`is_std` its std). */
  inceptionScore: 'is',
  inceptionScoreStd: 'is_std',
  /** Trainable parameters of the whole model, buffers (position embedding) excluded. */
  params: 'params',
  /** Peak TF.js tensor bytes during a training step region (plus the backend's GPU pool where reported). */
  peakTrainBytes: 'peak_train_bytes',
  /** Peak TF.js tensor bytes during a sampling pass region. */
  peakSampleBytes: 'peak_sample_bytes',
  /** Generated images per wall-clock second of sampling. */
  imagesPerSecond: 'images_per_s',
  /** Transformer block evaluations actually spent per image (counted at run time). */
  blockEvals: 'block_evals',
  /** Forward FLOPs per image by formula (multiply-add = 2 FLOPs). */
  flops: 'flops',
  /** Wall-clock seconds of the sampling pass for the measured images. */
  sampleSeconds: 'sample_seconds',
  /** Wall-clock seconds of training. */
  trainSeconds: 'train_seconds',
  /** Training loss; one row per logged step (`step` = optimizer step). */
  trainLoss: 'train_loss',
  /**
   * Fixed-point relative residual ‖z_{k+1}−z_k‖/‖z_k‖ during sampling: `step` = iteration k (0-based),
   * tag `t` = the diffusion timestep, one row per (t, k), averaged over the batch.
   */
  fpResidual: 'fp_residual',
} as const;
export type MetricName = (typeof METRIC)[keyof typeof METRIC];

export const METRIC_UNITS: Record<MetricName, string> = {
  fid: '',
  fd_mnist: '',
  kid: '',
  kid_std: '',
  kid_mnist: '',
  kid_mnist_std: '',
  precision: '',
  recall: '',
  is: '',
  is_std: '',
  params: 'count',
  peak_train_bytes: 'bytes',
  peak_sample_bytes: 'bytes',
  images_per_s: 'images/s',
  block_evals: 'count',
  flops: 'FLOP',
  sample_seconds: 's',
  train_seconds: 's',
  train_loss: '',
  fp_residual: '',
};

/** Human-readable metric labels (used in tables and axis titles). */
export const METRIC_LABELS: Record<MetricName, string> = {
  fid: 'FID',
  fd_mnist: 'FD (MNIST classifier)',
  kid: 'KID',
  kid_std: 'KID std',
  kid_mnist: 'KID (MNIST classifier)',
  kid_mnist_std: 'KID (MNIST classifier) std',
  precision: 'Precision',
  recall: 'Recall',
  is: 'Inception Score',
  is_std: 'IS std',
  params: 'Parameters',
  peak_train_bytes: 'Peak training memory (bytes)',
  peak_sample_bytes: 'Peak sampling memory (bytes)',
  images_per_s: 'Throughput (images/s)',
  block_evals: 'Block evaluations / image',
  flops: 'FLOPs / image',
  sample_seconds: 'Sampling time (s)',
  train_seconds: 'Training time (s)',
  train_loss: 'Training loss',
  fp_residual: 'Fixed-point residual',
};

/** The distribution metrics in the order the report prefers them (first one present wins). */
export const DISTRIBUTION_METRICS = [METRIC.fid, METRIC.fdMnist, METRIC.kid, METRIC.kidMnist] as const;

/**
 * Tag keys, on the run (`tags` of claimRun) or on a metric row (a metric's tags override its run's).
 * Values are numbers, strings, booleans or null.
 */
export const TAG = {
  /** Peak training memory measured with gradient checkpointing (boolean; absent = without). */
  gradCheckpoint: 'grad_checkpoint',
  /** Sampling budget in DiT-step equivalents (number). */
  budget: 'budget',
  /** Number of sampling (diffusion) steps (number). */
  steps: 'steps',
  /** Fixed-point iterations per step; for non-constant allocations the mean (number). */
  iters: 'iters',
  /** Iteration allocation schedule: 'fixed' | 'increasing' | 'decreasing' | 'tolerance'. */
  allocation: 'allocation',
  /** Fixed-point solution reuse across steps (boolean). */
  reuse: 'reuse',
  /** Seed of the run (number); also a run column. */
  seed: 'seed',
  /** FID preprocessing mode: 'pytorch-fid' | 'tf'. */
  preprocessing: 'preprocessing',
  /** Number of pre / post blocks of an FPDM model (numbers). */
  preDepth: 'pre_depth',
  postDepth: 'post_depth',
  /** S-JFB training iteration ranges as 'a-b' strings: no-grad iterations and grad iterations. */
  sjfbNoGrad: 'sjfb_nograd',
  sjfbGrad: 'sjfb_grad',
  /** Diffusion timestep of a per-timestep metric row (number), e.g. fp_residual. */
  t: 't',
  /** Number of images a distribution metric was computed from (number). */
  numImages: 'num_images',
  /**
   * Matmul precision of the run: 'mixed' (f16 tensor-core matmuls, f32 accumulation); absent = fp32, as
   * in the run key, so fp32 results carry the tags they had before the setting existed.
   */
  precision: 'precision',
} as const;

export { ALLOCATIONS, type Allocation } from '../diffusion/budget.js';
