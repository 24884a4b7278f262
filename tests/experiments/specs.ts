// Test specs: a tiny valid spec (synthetic 8x8 data, depth-3 models, a few steps) and a corpus of
// malformed variants of it, each with the path its error must name and the line it must point at.

export const TINY_SPEC = `name: tiny
dataset:
  kind: synthetic
  imageSize: 8
  channels: 1
  classes: 2
  size: 32
models:
  dit:
    kind: dit
    hiddenSize: 16
    depth: 3
    heads: 2
    patchSize: 4
  fpdm:
    kind: fpdm
    like: dit
    pre: 1
    post: 1
    sjfb:
      noGrad: [0, 1]
      withGrad: [1, 2]
training:
  steps: 4
  batchSize: 4
  lr: 0.001
  diffusionSteps: 100
  logEvery: 1
sampling:
  budgets: [2, 4]
  splits: [2, 4]
  samples: 4
  batchSize: 4
metrics: [params]
seeds: [0]
`;

/** Replaces `from` (which must occur) by `to`. */
export function edit(text: string, from: string, to: string): string {
  if (!text.includes(from)) throw new Error(`test corpus: '${from}' is not in the spec`);
  return text.replace(from, to);
}

export interface MalformedCase {
  id: string;
  text: string;
  /** text the error message must contain (the offending path, or the YAML error) */
  path: string;
  /** the 1-based line the message must name: the first line containing this marker */
  lineOf?: string;
}

const T = TINY_SPEC;
const c = (id: string, text: string, path: string, lineOf?: string): MalformedCase => ({ id, text, path, lineOf });

export const MALFORMED: MalformedCase[] = [
  c('yaml: unclosed flow sequence', edit(T, 'budgets: [2, 4]', 'budgets: [2, 4'), 'YAML syntax error'),
  c('yaml: bad indentation', edit(T, '  steps: 4\n', '  steps: 4\n    batch: 2\n'), 'YAML syntax error'),
  c('yaml: duplicate key', edit(T, '  lr: 0.001\n', '  lr: 0.001\n  lr: 0.002\n'), 'YAML syntax error', 'lr: 0.002'),
  c('top level is a list', '- name: tiny\n- dataset: {}\n', '(top level)'),
  c('empty file', '', '(top level)'),
  c('missing dataset', edit(T, T.slice(T.indexOf('dataset:'), T.indexOf('models:')), ''), 'dataset: is missing'),
  c('unknown top-level key', edit(T, 'seeds: [0]', 'seeds: [0]\nseed: 1'), 'seed: unknown key', 'seed: 1'),
  c('unknown training key', edit(T, '  lr: 0.001', '  lrr: 0.001'), 'training.lrr', 'lrr: 0.001'),
  c('wrong type: steps is a string', edit(T, '  steps: 4', '  steps: ten'), 'training.steps', 'steps: ten'),
  c(
    'negative batch size',
    edit(T, '  batchSize: 4\n  lr', '  batchSize: -4\n  lr'),
    'training.batchSize',
    'batchSize: -4',
  ),
  c('zero training steps', edit(T, '  steps: 4', '  steps: 0'), 'training.steps', 'steps: 0'),
  c('fractional sample count', edit(T, '  samples: 4', '  samples: 2.5'), 'sampling.samples', 'samples: 2.5'),
  c('negative budget', edit(T, 'budgets: [2, 4]', 'budgets: [2, -5]'), 'sampling.budgets[1]', 'budgets: [2, -5]'),
  c('budget of one step', edit(T, 'budgets: [2, 4]', 'budgets: [1, 4]'), 'sampling.budgets[0]', 'budgets: [1, 4]'),
  c(
    'impossible split for every budget',
    edit(T, 'splits: [2, 4]', 'splits: [2, 13]'),
    'sampling.splits[1]',
    'splits: [2, 13]',
  ),
  c(
    'split that cannot spend a budget exactly',
    edit(T, 'budgets: [2, 4]', 'budgets: [2, 5]'),
    'sampling.splits[0]',
    'splits: [2, 4]',
  ),
  c(
    'renamed key training.loss',
    edit(T, '  lr: 0.001\n', '  lr: 0.001\n  loss: hybrid\n'),
    'training.loss: was replaced by training.prediction',
    'loss: hybrid',
  ),
  c(
    'budget beyond the diffusion steps',
    edit(T, 'budgets: [2, 4]', 'budgets: [2, 200]'),
    'sampling.budgets[1]',
    'budgets: [2, 200]',
  ),
  c('fpdm pre+post not below depth', edit(T, '    pre: 1', '    pre: 2'), 'models.fpdm.pre', 'pre: 2'),
  c('unknown dataset kind', edit(T, 'kind: synthetic', 'kind: cifar'), 'dataset.kind', 'kind: cifar'),
  c(
    'folder dataset without path',
    edit(
      T,
      '  kind: synthetic\n  imageSize: 8\n  channels: 1\n  classes: 2\n  size: 32',
      '  kind: folder\n  imageSize: 8',
    ),
    'dataset.path',
  ),
  c(
    'no models',
    edit(T, T.slice(T.indexOf('models:'), T.indexOf('training:')), 'models: {}\n'),
    'models: received an empty mapping',
    'models: {}',
  ),
  c('unknown model kind', edit(T, 'kind: dit', 'kind: unet'), 'models.dit.kind', 'kind: unet'),
  c(
    'preset that does not exist',
    edit(T, '    kind: dit\n', '    kind: dit\n    preset: DiT-M/2\n'),
    'models.dit.preset',
    'preset: DiT-M/2',
  ),
  c('like names an unknown model', edit(T, 'like: dit', 'like: ditt'), 'models.fpdm.like', 'like: ditt'),
  c(
    'patch size does not divide the image',
    edit(T, 'patchSize: 4', 'patchSize: 3'),
    'models.dit.patchSize',
    'patchSize: 3',
  ),
  c('heads do not divide hidden size', edit(T, 'heads: 2', 'heads: 3'), 'models.dit.heads', 'heads: 3'),
  c('unknown metric', edit(T, 'metrics: [params]', 'metrics: [params, fid2]'), 'metrics[1]', 'metrics: [params, fid2]'),
  c(
    'fd_mnist on synthetic data',
    edit(T, 'metrics: [params]', 'metrics: [params, fd_mnist]'),
    'metrics[1]',
    'metrics: [params, fd_mnist]',
  ),
  c(
    'kid_mnist on synthetic data',
    edit(T, 'metrics: [params]', 'metrics: [params, kid_mnist]'),
    'metrics[1]',
    'metrics: [params, kid_mnist]',
  ),
  c('no seeds', edit(T, 'seeds: [0]', 'seeds: []'), 'seeds', 'seeds: []'),
  c('negative seed', edit(T, 'seeds: [0]', 'seeds: [0, -1]'), 'seeds[1]', 'seeds: [0, -1]'),
  c(
    'grid: unknown section',
    edit(T, 'seeds: [0]', 'seeds: [0]\ngrid:\n  trainig.steps: [2, 4]'),
    'grid["trainig.steps"]',
    'trainig.steps',
  ),
  c(
    'grid: empty list',
    edit(T, 'seeds: [0]', 'seeds: [0]\ngrid:\n  training.steps: []'),
    'grid["training.steps"]',
    'training.steps: []',
  ),
  c(
    'grid: invalid value',
    edit(T, 'seeds: [0]', 'seeds: [0]\ngrid:\n  training.steps: [4, -1]'),
    'grid["training.steps"][1]',
    'training.steps: [4, -1]',
  ),
  c(
    'grid: unknown model',
    edit(T, 'seeds: [0]', 'seeds: [0]\ngrid:\n  models.unet.pre: [1]'),
    'grid["models.unet.pre"]',
    'models.unet.pre',
  ),
  c(
    'grid: not a list',
    edit(T, 'seeds: [0]', 'seeds: [0]\ngrid:\n  training.steps: 5'),
    'grid["training.steps"]',
    'training.steps: 5',
  ),
  c(
    'grid: unknown key under a section',
    edit(T, 'seeds: [0]', 'seeds: [0]\ngrid:\n  training.stepz: [2]'),
    'grid["training.stepz"]',
    'training.stepz',
  ),
  c(
    'tolerance of zero',
    edit(T, '  samples: 4', '  samples: 4\n  allocation: [fixed, tolerance]\n  tolerance: 0'),
    'sampling.tolerance',
    'tolerance: 0',
  ),
  c('eta with the ddpm sampler', edit(T, '  samples: 4', '  samples: 4\n  eta: 0.5'), 'sampling.eta', 'eta: 0.5'),
  c(
    'guidance on unconditional data',
    edit(edit(T, 'classes: 2', 'classes: 1'), '  samples: 4', '  samples: 4\n  cfg: 4'),
    'sampling.cfg',
    'cfg: 4',
  ),
  c(
    'unknown allocation',
    edit(T, '  samples: 4', '  samples: 4\n  allocation: smooth'),
    'sampling.allocation',
    'allocation: smooth',
  ),
  c(
    'reuse is not a boolean',
    edit(T, '  samples: 4', '  samples: 4\n  reuse: sometimes'),
    'sampling.reuse',
    'reuse: sometimes',
  ),
  c(
    'warm-up longer than training',
    edit(T, '  lr: 0.001', '  lr: 0.001\n  warmupSteps: 10'),
    'training.warmupSteps',
    'warmupSteps: 10',
  ),
  c(
    'unknown learning-rate schedule',
    edit(T, '  lr: 0.001', '  lr: 0.001\n  lrSchedule: step'),
    'training.lrSchedule',
    'lrSchedule: step',
  ),
  c(
    'cosine decay with nothing after the warm-up',
    edit(T, '  lr: 0.001', '  lr: 0.001\n  warmupSteps: 4\n  lrSchedule: cosine'),
    'training.warmupSteps',
    'warmupSteps: 4',
  ),
  c(
    'unknown S-JFB key',
    edit(T, '      withGrad: [1, 2]', '      withGrad: [1, 2]\n      grad: [1, 2]'),
    'models.fpdm.sjfb.grad',
    'grad: [1, 2]',
  ),
  c('reversed S-JFB range', edit(T, 'noGrad: [0, 1]', 'noGrad: [3, 1]'), 'models.fpdm.sjfb.noGrad', 'noGrad: [3, 1]'),
  c('duplicate budget', edit(T, 'budgets: [2, 4]', 'budgets: [2, 4, 2]'), 'sampling.budgets[2]', 'budgets: [2, 4, 2]'),
  c('invalid experiment name', edit(T, 'name: tiny', 'name: "my exp!"'), 'name', 'name: "my exp!"'),
  c(
    'sampling batch larger than samples',
    edit(T, '  batchSize: 4\nmetrics', '  batchSize: 8\nmetrics'),
    'sampling.batchSize',
    'batchSize: 8\nmetrics'.split('\n')[0],
  ),
  c('missing sampling budgets', edit(T, '  budgets: [2, 4]\n', ''), 'sampling.budgets: is missing'),
  c(
    'unknown precision',
    edit(T, 'seeds: [0]', 'seeds: [0]\nprecision: bf16'),
    'precision: received',
    'precision: bf16',
  ),
  c(
    'unknown precision in a list',
    edit(T, 'seeds: [0]', 'seeds: [0]\nprecision: [fp32, f16]'),
    'precision[1]',
    'precision: [fp32, f16]',
  ),
  c(
    'precision listed twice',
    edit(T, 'seeds: [0]', 'seeds: [0]\nprecision: [mixed, mixed]'),
    'precision[1]',
    'precision: [mixed, mixed]',
  ),
  c(
    'mixed precision on the cpu backend',
    edit(T, 'seeds: [0]', 'seeds: [0]\nbackend: cpu\nprecision: mixed'),
    'precision: received "mixed" with backend: cpu',
    'precision: mixed',
  ),
  c(
    'mixed precision in a list on the wasm backend',
    edit(T, 'seeds: [0]', 'seeds: [0]\nbackend: wasm\nprecision: [fp32, mixed]'),
    'precision[1]: received "mixed" with backend: wasm',
    'precision: [fp32, mixed]',
  ),
  c(
    'grid: mixed precision on the tensorflow backend',
    edit(T, 'seeds: [0]', 'seeds: [0]\nbackend: tensorflow\ngrid:\n  precision: [fp32, mixed]'),
    'grid.precision[1]',
    'precision: [fp32, mixed]',
  ),
];

/** 1-based line of the first line containing `marker`. */
export function lineOfMarker(text: string, marker: string): number {
  const lines = text.split('\n');
  const i = lines.findIndex((l) => l.includes(marker));
  if (i < 0) throw new Error(`marker '${marker}' not found`);
  return i + 1;
}
