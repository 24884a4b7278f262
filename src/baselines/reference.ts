// Published and measured reference numbers, as data the report can show next to our own results.
// Every entry says where it comes from: the paper's own claims (Bai & Melas-Kyriazi, "Fixed Point
// Diffusion Models", CVPR 2024, arXiv:2401.08741), counts of the paper's public reference code, or
// measurements of that reference code on this project's machines (shared/reference/ANCHORS.md).
// Metric names and units are those of src/store/names.ts where one exists.

export type ReferenceSource = 'paper' | 'reference-code' | 'measured-reference';

export interface Citation {
  source: ReferenceSource;
  /** human-readable citation */
  cite: string;
}

export const PAPER: Citation = {
  source: 'paper',
  cite: 'Bai & Melas-Kyriazi, Fixed Point Diffusion Models, CVPR 2024 (arXiv:2401.08741)',
};
export const REFERENCE_CODE: Citation = {
  source: 'reference-code',
  cite: "the FPDM paper's public PyTorch code (models.py), parameter totals excluding buffers",
};
export const MEASURED: Citation = {
  source: 'measured-reference',
  cite: 'the FPDM reference PyTorch code measured on one NVIDIA H100 (float32, TF32 off, batch 32, 32x32x4 latents); shared/reference/ANCHORS.md',
};

export interface ReferenceValue {
  /** what the number is about, e.g. 'DiT-XL/2' or 'FPDM-XL/2 (1 pre, 1 post) vs DiT-XL/2' */
  subject: string;
  /** metric name (store names where one exists) */
  metric: string;
  value: number;
  unit: string;
  /** conditions the number holds under */
  setting: string;
  citation: Citation;
}

/** Parameter counts, 32x32x4 latents, 1000 classes, learned sigma (exact, reference code). */
export const PARAM_COUNTS: Record<string, number> = {
  'DiT-XL/2': 674_834_720,
  'DiT-XL/4': 675_000_704,
  'DiT-XL/8': 675_664_640,
  'DiT-L/2': 457_840_672,
  'DiT-L/4': 457_988_224,
  'DiT-L/8': 458_578_432,
  'DiT-B/2': 130_315_808,
  'DiT-B/4': 130_426_496,
  'DiT-B/8': 130_869_248,
  'DiT-S/2': 32_865_056,
  'DiT-S/4': 32_920_448,
  'DiT-S/8': 33_142_016,
  'FPDM(DiT-XL/2, pre=1, post=1)': 86_500_256,
  'FPDM(DiT-XL/2, pre=2, post=2)': 134_310_560,
  'FPDM(DiT-XL/2, pre=4, post=4)': 229_931_168,
  'FPDM(DiT-B/2, pre=1, post=1)': 38_792_480,
  'FPDM(DiT-B/2, pre=2, post=2)': 60_049_184,
  'FPDM(DiT-B/2, pre=4, post=4)': 102_562_592,
  'FPDM(DiT-S/2, pre=1, post=1)': 9_959_072,
  'FPDM(DiT-S/2, pre=2, post=2)': 15_279_008,
  'FPDM(DiT-S/2, pre=4, post=4)': 25_918_880,
};

const setting256 = 'reference code, float32, TF32 off, batch 32, 32x32x4 latents, one H100';
const v = (
  subject: string,
  metric: string,
  value: number,
  unit: string,
  setting: string,
  citation: Citation,
): ReferenceValue => ({ subject, metric, value, unit, setting, citation });

/** The paper's headline claims (relative numbers are fractions: 0.87 = 87%). */
export const PAPER_CLAIMS: ReferenceValue[] = [
  v('FPDM vs DiT-XL/2', 'params_reduction', 0.87, 'fraction', 'FPDM with 1 pre and 1 post block on DiT-XL/2', PAPER),
  v('FPDM vs DiT-XL/2', 'train_memory_reduction', 0.6, 'fraction', 'peak GPU memory during training', PAPER),
  v('DiT-XL/2', 'block_evals', 560, 'count', 'a 20-DiT-step sampling budget (28 blocks per step)', PAPER),
  v(
    'FPDM-XL/2 (1 pre, 1 post)',
    'block_evals',
    560,
    'count',
    '20 steps x 26 iterations, or 40 steps x 12 iterations (pre + iters + post per step)',
    PAPER,
  ),
  v(
    'DiT-XL/2 (1 class)',
    'params',
    673_683_872,
    'count',
    'unconditional (the teaser figure\'s "674M")',
    REFERENCE_CODE,
  ),
  v(
    'FPDM-XL/2 (1 pre, 1 post, 1 class)',
    'params',
    85_349_408,
    'count',
    'unconditional (the teaser figure\'s "85M")',
    REFERENCE_CODE,
  ),
];

/** Measured with the reference code (ANCHORS.md): training and sampling speed and memory. */
export const MEASURED_ANCHORS: ReferenceValue[] = [
  v('DiT-XL/2', 'train_step_ms', 817, 'ms', `train, gradient checkpointing; ${setting256}`, MEASURED),
  v('DiT-XL/2', 'peak_train_bytes', 15.29 * 2 ** 30, 'bytes', `train, gradient checkpointing; ${setting256}`, MEASURED),
  v('DiT-XL/2', 'train_step_ms', 610, 'ms', `train, no checkpointing; ${setting256}`, MEASURED),
  v('DiT-XL/2', 'peak_train_bytes', 32.66 * 2 ** 30, 'bytes', `train, no checkpointing; ${setting256}`, MEASURED),
  v('FPDM-XL/2 (1 pre, 1 post)', 'train_step_ms', 277, 'ms', `train, gradient checkpointing; ${setting256}`, MEASURED),
  v(
    'FPDM-XL/2 (1 pre, 1 post)',
    'peak_train_bytes',
    12.54 * 2 ** 30,
    'bytes',
    `train, gradient checkpointing; ${setting256}`,
    MEASURED,
  ),
  v('FPDM-XL/2 (1 pre, 1 post)', 'train_step_ms', 261, 'ms', `train, no checkpointing; ${setting256}`, MEASURED),
  v(
    'FPDM-XL/2 (1 pre, 1 post)',
    'peak_train_bytes',
    13.47 * 2 ** 30,
    'bytes',
    `train, no checkpointing; ${setting256}`,
    MEASURED,
  ),
  v('DiT-S/2', 'train_step_ms', 54, 'ms', `train, no checkpointing; ${setting256}`, MEASURED),
  v('DiT-S/2', 'peak_train_bytes', 3.57 * 2 ** 30, 'bytes', `train, no checkpointing; ${setting256}`, MEASURED),
  v('FPDM-S/2 (1 pre, 1 post)', 'train_step_ms', 50, 'ms', `train, no checkpointing; ${setting256}`, MEASURED),
  v(
    'FPDM-S/2 (1 pre, 1 post)',
    'peak_train_bytes',
    4.18 * 2 ** 30,
    'bytes',
    `train, no checkpointing; ${setting256}`,
    MEASURED,
  ),
  v('DiT-XL/2', 'images_per_s', 8.1, 'images/s', `sample 20 steps (560 block evaluations); ${setting256}`, MEASURED),
  v('DiT-XL/2', 'peak_sample_bytes', 3.01 * 2 ** 30, 'bytes', `sample 20 steps; ${setting256}`, MEASURED),
  v(
    'FPDM-XL/2 (1 pre, 1 post)',
    'images_per_s',
    5.9,
    'images/s',
    `sample 20 steps x 26 iterations; ${setting256}`,
    MEASURED,
  ),
  v(
    'FPDM-XL/2 (1 pre, 1 post)',
    'peak_sample_bytes',
    0.94 * 2 ** 30,
    'bytes',
    `sample 20 steps x 26 iterations; ${setting256}`,
    MEASURED,
  ),
  v(
    'FPDM-XL/2 (1 pre, 1 post)',
    'images_per_s',
    5.9,
    'images/s',
    `sample 40 steps x 12 iterations with reuse; ${setting256}`,
    MEASURED,
  ),
  v(
    'FPDM-XL/2 (1 pre, 1 post)',
    'peak_sample_bytes',
    0.96 * 2 ** 30,
    'bytes',
    `sample 40 steps x 12 iterations with reuse; ${setting256}`,
    MEASURED,
  ),
];

/** Every reference number, parameter counts included (as `params` rows). */
export function allReferenceValues(): ReferenceValue[] {
  const params = Object.entries(PARAM_COUNTS).map(([subject, n]) =>
    v(subject, 'params', n, 'count', '32x32x4 latents, 1000 classes, learned sigma', REFERENCE_CODE),
  );
  return [...PAPER_CLAIMS, ...params, ...MEASURED_ANCHORS];
}

/** The parameter reduction the paper claims, recomputed from the exact counts: 1 − 86,500,256 / 674,834,720 = 0.8718. */
export function paramReduction(fpdm: string, dit: string): number {
  const a = PARAM_COUNTS[fpdm];
  const b = PARAM_COUNTS[dit];
  if (a === undefined || b === undefined)
    throw new Error(`no reference parameter count for '${a === undefined ? fpdm : dit}'`);
  return 1 - a / b;
}

/**
 * The paper's Table 1 (ImageNet 256, class-conditional, FID-50K without guidance, DiT-XL/2 vs FPDM
 * with 1 pre and 1 post block), by budget in DiT-step equivalents (140 / 280 / 560 block evaluations
 * = 5 / 10 / 20 DiT-XL/2 steps). The FPDM cell is "our best model" at that budget; its split is not stated.
 */
export const PAPER_TABLE1: {
  budget: number;
  blocks: number;
  dit: { ddpm: number; ddim: number };
  fpdm: { ddpm: number; ddim: number };
}[] = [
  { budget: 5, blocks: 140, dit: { ddpm: 148.0, ddim: 110.0 }, fpdm: { ddpm: 85.8, ddim: 33.9 } },
  { budget: 10, blocks: 280, dit: { ddpm: 80.9, ddim: 35.2 }, fpdm: { ddpm: 43.3, ddim: 22.4 } },
  { budget: 20, blocks: 560, dit: { ddpm: 37.9, ddim: 16.5 }, fpdm: { ddpm: 26.1, ddim: 19.6 } },
];
export const PAPER_TABLE1_SETTING = 'ImageNet 256, FID-50K, no guidance, DiT-XL/2 (674M) vs FPDM (85M), paper Table 1';

/** The paper's parameter and training-memory figures (Table 1, §4.3: "from 25.2 GB to only 10.2 GB at a batch size of 64"). */
export const PAPER_SIZES = {
  params: { dit: 674e6, fpdm: 85e6, setting: 'DiT-XL/2 vs FPDM (1 pre, 1 post), paper Table 1' },
  trainMemoryBytes: { dit: 25.2e9, fpdm: 10.2e9, setting: 'peak GPU memory in training at batch 64, paper §4.3' },
} as const;

/**
 * What real images score on a distribution metric, measured with this tool's settings: the level a
 * perfect generator would reach, against which the report judges whether models are good enough for
 * their comparisons to mean much. `numImages` generated vs `referenceImages` reference images.
 */
export interface QualityLevel {
  metric: string;
  numImages: number;
  referenceImages: number;
  /** range over disjoint sets of real images */
  real: [number, number];
  /** uniform 8-bit noise (the metric's "nothing learned" level) */
  noise: number;
  source: string;
}

export const QUALITY_LEVELS: QualityLevel[] = [
  {
    metric: 'fd_mnist',
    numImages: 256,
    referenceImages: 256,
    real: [21, 35],
    noise: 613,
    source:
      "sets of 256 real MNIST training digits (16×16, 8-bit) vs the first 256 held-out digits: 21–32 in the reproduction's calibration (results/reproduce-mnist/README.md), 31.8 / 32.7 / 34.8 for training digits 0–255 / 256–511 / 512–767 re-measured for this table; uniform 8-bit noise 613–653",
  },
  {
    metric: 'kid_mnist',
    numImages: 256,
    referenceImages: 256,
    real: [-0.5, 8.1],
    noise: 150,
    source:
      "sets of 256 real MNIST training digits (16×16, 8-bit) vs the first 256 held-out digits, 100 subsets of 128: −0.5 to 8 in the reproduction's calibration (results/reproduce-mnist/README.md), 8.05 / 5.41 / 5.83 for training digits 0–255 / 256–511 / 512–767 re-measured for this table; uniform 8-bit noise 150–162",
  },
];
