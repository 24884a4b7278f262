// One vocabulary: the spec's keys and the commands' flags are the same settings (experiments/settings.ts
// FLAGS), with the same defaults, and give the same resolved config and run key. Every setting is
// walked through both doors: a spec with the setting changed, planned by the planner, against the
// train/sample command's options with the flag changed, resolved by the command's own code.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Command, type Option } from 'commander';
import { z } from 'zod';
import { register as registerSample, samplePlan } from '../../src/cli/commands/sample.js';
import {
  register as registerTrain,
  resolveTrainCommand,
  type TrainCommandOptions,
} from '../../src/cli/commands/train.js';
import { planRuns, type PlannedSample, type PlannedTrain } from '../../src/experiments/planner.js';
import {
  FLAGS,
  RENAMED_FLAGS,
  datasetSchema,
  fpdmSchema,
  resolveDiffusion,
  samplingSchema,
  trainingSchema,
} from '../../src/experiments/settings.js';
import { parseSpec } from '../../src/experiments/spec.js';
import { UserError } from '../../src/util/errors.js';

const FP = 'fingerprint-of-the-data';
const VERSION = '9.9.9';

/** A spec document as YAML would give it (sections as plain records the edits below write into). */
interface SpecDoc {
  name: string;
  dataset: Record<string, unknown>;
  models: { m: Record<string, unknown> };
  training: Record<string, unknown>;
  sampling: Record<string, unknown>;
  metrics: string[];
  seeds: number[];
}

/** The base settings of both doors: an FPDM on 8×8 synthetic data (a DiT where kind says so). */
function baseSpec(): SpecDoc {
  return {
    name: 'vocab',
    dataset: { kind: 'synthetic', imageSize: 8, channels: 1 },
    models: { m: { kind: 'fpdm', hiddenSize: 16, depth: 3, heads: 2, patchSize: 4 } },
    training: { steps: 4, batchSize: 4 },
    sampling: { budgets: [4], splits: [2], samples: 4, batchSize: 4 },
    metrics: ['params'],
    seeds: [0],
  };
}
const baseFlags = (): TrainCommandOptions => ({
  data: 'synthetic',
  imageSize: 8,
  channels: 1,
  fpdm: true,
  hiddenSize: 16,
  depth: 3,
  heads: 2,
  patchSize: 4,
  steps: 4,
  batchSize: 4,
  out: 'unused',
});

type Edit = { flag: string; cli: (o: TrainCommandOptions) => void; spec: (s: SpecDoc) => void };
const m = (s: SpecDoc) => s.models.m;

/** One entry per train flag of FLAGS: a non-default value set through each door. */
const TRAIN_EDITS: Edit[] = [
  {
    flag: '--preset',
    cli: (o) => {
      o.preset = 'DiT-S/4';
      delete o.hiddenSize;
      delete o.depth;
      delete o.heads;
      delete o.patchSize;
    },
    spec: (s) => {
      s.models.m = { kind: 'fpdm', preset: 'DiT-S/4' };
    },
  },
  {
    flag: '--hidden-size',
    cli: (o) => {
      o.hiddenSize = 32;
    },
    spec: (s) => {
      m(s).hiddenSize = 32;
    },
  },
  {
    flag: '--depth',
    cli: (o) => {
      o.depth = 5;
    },
    spec: (s) => {
      m(s).depth = 5;
    },
  },
  {
    flag: '--heads',
    cli: (o) => {
      o.heads = 4;
    },
    spec: (s) => {
      m(s).heads = 4;
    },
  },
  {
    flag: '--patch-size',
    cli: (o) => {
      o.patchSize = 2;
    },
    spec: (s) => {
      m(s).patchSize = 2;
    },
  },
  {
    flag: '--mlp-ratio',
    cli: (o) => {
      o.mlpRatio = 2;
    },
    spec: (s) => {
      m(s).mlpRatio = 2;
    },
  },
  {
    flag: '--class-dropout',
    cli: (o) => {
      o.classDropout = 0.25;
    },
    spec: (s) => {
      m(s).classDropout = 0.25;
    },
  },
  {
    flag: '--fpdm',
    cli: (o) => {
      o.fpdm = false;
    },
    spec: (s) => {
      m(s).kind = 'dit';
    },
  },
  {
    flag: '--pre',
    cli: (o) => {
      o.pre = 0;
    },
    spec: (s) => {
      m(s).pre = 0;
    },
  },
  {
    flag: '--post',
    cli: (o) => {
      o.post = 0;
    },
    spec: (s) => {
      m(s).post = 0;
    },
  },
  {
    flag: '--sjfb-no-grad',
    cli: (o) => {
      o.sjfbNoGrad = [1, 3];
    },
    spec: (s) => {
      m(s).sjfb = { noGrad: [1, 3] };
    },
  },
  {
    flag: '--sjfb-with-grad',
    cli: (o) => {
      o.sjfbWithGrad = [2, 4];
    },
    spec: (s) => {
      m(s).sjfb = { withGrad: [2, 4] };
    },
  },
  {
    flag: '--pre-post-timestep-conditioning',
    cli: (o) => {
      o.prePostTimestepConditioning = false;
    },
    spec: (s) => {
      m(s).prePostTimestepConditioning = false;
    },
  },
  {
    flag: '--data',
    cli: (o) => {
      o.data = 'mnist';
      delete o.channels;
    },
    spec: (s) => {
      s.dataset = { kind: 'mnist', imageSize: 8 };
    },
  },
  {
    flag: '--image-size',
    cli: (o) => {
      o.imageSize = 16;
    },
    spec: (s) => {
      s.dataset.imageSize = 16;
    },
  },
  {
    flag: '--channels',
    cli: (o) => {
      o.channels = 3;
    },
    spec: (s) => {
      s.dataset.channels = 3;
    },
  },
  {
    flag: '--classes',
    cli: (o) => {
      o.classes = 3;
    },
    spec: (s) => {
      s.dataset.classes = 3;
    },
  },
  {
    flag: '--limit',
    cli: (o) => {
      o.limit = 10;
    },
    spec: (s) => {
      s.dataset.limit = 10;
    },
  },
  {
    flag: '--size',
    cli: (o) => {
      o.size = 64;
    },
    spec: (s) => {
      s.dataset.size = 64;
    },
  },
  {
    flag: '--hflip',
    cli: (o) => {
      o.hflip = true;
    },
    spec: (s) => {
      s.dataset.hflip = true;
    },
  },
  {
    flag: '--steps',
    cli: (o) => {
      o.steps = 6;
    },
    spec: (s) => {
      s.training.steps = 6;
    },
  },
  {
    flag: '--batch-size',
    cli: (o) => {
      o.batchSize = 2;
    },
    spec: (s) => {
      s.training.batchSize = 2;
    },
  },
  {
    flag: '--lr',
    cli: (o) => {
      o.lr = 0.01;
    },
    spec: (s) => {
      s.training.lr = 0.01;
    },
  },
  {
    flag: '--weight-decay',
    cli: (o) => {
      o.weightDecay = 0.1;
    },
    spec: (s) => {
      s.training.weightDecay = 0.1;
    },
  },
  {
    flag: '--warmup-steps',
    cli: (o) => {
      o.warmupSteps = 2;
    },
    spec: (s) => {
      s.training.warmupSteps = 2;
    },
  },
  {
    flag: '--lr-schedule',
    cli: (o) => {
      o.lrSchedule = 'cosine';
    },
    spec: (s) => {
      s.training.lrSchedule = 'cosine';
    },
  },
  {
    flag: '--ema',
    cli: (o) => {
      o.ema = 0.5;
    },
    spec: (s) => {
      s.training.ema = 0.5;
    },
  },
  {
    flag: '--grad-clip',
    cli: (o) => {
      o.gradClip = 1;
    },
    spec: (s) => {
      s.training.gradClip = 1;
    },
  },
  {
    flag: '--checkpoint-every',
    cli: (o) => {
      o.checkpointEvery = 2;
    },
    spec: (s) => {
      s.training.checkpointEvery = 2;
    },
  },
  {
    flag: '--prediction',
    cli: (o) => {
      o.prediction = 'v';
    },
    spec: (s) => {
      s.training.prediction = 'v';
    },
  },
  {
    flag: '--diffusion-steps',
    cli: (o) => {
      o.diffusionSteps = 50;
    },
    spec: (s) => {
      s.training.diffusionSteps = 50;
    },
  },
  {
    flag: '--schedule',
    cli: (o) => {
      o.schedule = 'cosine';
    },
    spec: (s) => {
      s.training.schedule = 'cosine';
    },
  },
  {
    flag: '--grad-checkpoint',
    cli: (o) => {
      o.gradCheckpoint = true;
    },
    spec: (s) => {
      s.training.gradCheckpoint = true;
    },
  },
  {
    flag: '--seed',
    cli: (o) => {
      o.seed = 3;
    },
    spec: (s) => {
      s.seeds = [3];
    },
  },
];

function specDoor(spec: SpecDoc): { train: PlannedTrain; samples: PlannedSample[] } {
  const loaded = parseSpec(JSON.stringify(spec));
  const plan = planRuns({ spec: loaded, fingerprints: loaded.variants.map(() => FP), toolVersion: VERSION });
  const train = plan.runs.find((r): r is PlannedTrain => r.kind === 'train')!;
  return { train, samples: plan.runs.filter((r): r is PlannedSample => r.kind === 'sample') };
}

test('every train flag is a setting of the schema, and the train command registers exactly those', () => {
  const program = new Command();
  registerTrain(program, () => ({ backend: 'cpu' }) as never);
  registerSample(program, () => ({ backend: 'cpu' }) as never);
  const visible = (name: string) =>
    program.commands
      .find((c) => c.name() === name)!
      .options.filter((o: Option) => !o.hidden)
      .map((o: Option) => o.long!);
  // sample's options for checkpoints of the reference training code (decoding and file naming), not training/sampling settings
  const referenceCheckpoint = [
    '--config',
    '--vae',
    '--vae-config',
    '--vae-variant',
    '--npz',
    '--png-naming',
    '--label-names',
  ];
  const notSettings = {
    train: ['--model-config', '--out', '--json'],
    sample: ['--ckpt', '--iters', '--out', '--save', '--labels', '--entry', '--json', ...referenceCheckpoint],
  };
  for (const cmd of ['train', 'sample'] as const) {
    assert.deepEqual(
      visible(cmd)
        .filter((f) => !notSettings[cmd].includes(f))
        .sort(),
      Object.keys(FLAGS[cmd]).sort(),
      `${cmd}: flags vs FLAGS`,
    );
    for (const old of Object.keys(RENAMED_FLAGS[cmd]))
      assert.ok(!visible(cmd).includes(old), `${cmd} still shows ${old}`);
  }
  // every path names a key of the schema (in kebab-case, but for the few whose spec key is a list or a kind)
  const shapes: Record<string, z.ZodRawShape> = {
    dataset: datasetSchema.shape,
    training: trainingSchema.shape,
    sampling: samplingSchema.shape,
    models: fpdmSchema.shape,
  };
  const kebab = (k: string) => `--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
  for (const cmd of ['train', 'sample'] as const) {
    for (const [flag, path] of Object.entries(FLAGS[cmd])) {
      if (path === 'seeds[]') continue;
      const segs = path
        .replace('[]', '')
        .split('.')
        .filter((x) => x !== '*');
      const key = segs[1]!;
      assert.ok(key in shapes[segs[0]!]!, `${flag}: ${path} is not in the schema`);
      if (segs.length === 3)
        assert.ok(segs[2]! in (fpdmSchema.shape.sjfb._def.innerType as z.AnyZodObject).shape, path);
      const exempt = ['--fpdm', '--data', '--budget', '--steps', '--sjfb-no-grad', '--sjfb-with-grad'];
      if (!exempt.includes(flag)) assert.equal(flag, kebab(key), `${flag} is not the kebab-case of ${key}`);
    }
  }
});

test('every training setting walked through both doors gives the same resolved config and run key', () => {
  const defaults = specDoor(baseSpec());
  const cli0 = resolveTrainCommand(baseFlags(), FP, VERSION);
  assert.deepEqual(cli0.config, defaults.train.config, 'defaults');
  assert.equal(cli0.key, defaults.train.key);
  const keys = new Set([cli0.key]);
  assert.deepEqual(
    TRAIN_EDITS.map((e) => e.flag).sort(),
    Object.keys(FLAGS.train).sort(),
    'the walk covers every train flag',
  );
  for (const e of TRAIN_EDITS) {
    const spec = baseSpec();
    e.spec(spec);
    const o = baseFlags();
    e.cli(o);
    const viaSpec = specDoor(spec).train;
    const viaCli = resolveTrainCommand(o, FP, VERSION);
    assert.deepEqual(viaCli.config, viaSpec.config, e.flag);
    assert.equal(viaCli.key, viaSpec.key, e.flag);
    // the settings that do not change the numbers leave the key alone; every other one changes it
    const neutral = ['--checkpoint-every', '--grad-checkpoint'].includes(e.flag);
    assert.equal(keys.has(viaCli.key), neutral, `${e.flag}: key ${neutral ? 'changed' : 'unchanged'}`);
    if (!neutral) keys.add(viaCli.key);
    // and the run the spec's runner trains gets the same training settings (cadence and checkpointing included)
    assert.deepEqual(viaCli.training, viaSpec.training, e.flag);
  }
});

test('v-prediction means one thing: v, zero terminal SNR, learned variance, mse + vb (the paper)', () => {
  const d = resolveDiffusion({ prediction: 'v', diffusionSteps: 1000, schedule: 'linear' });
  assert.deepEqual([d.parameterization, d.zeroTerminalSnr, d.variance, d.loss], ['v', true, 'learned-range', 'hybrid']);
  const e = resolveDiffusion({ prediction: 'eps', diffusionSteps: 1000, schedule: 'linear' });
  assert.deepEqual(
    [e.parameterization, e.zeroTerminalSnr, e.variance, e.loss],
    ['eps', false, 'learned-range', 'hybrid'],
  );
  // both doors: the model learns sigma under either prediction
  const s = baseSpec();
  s.training.prediction = 'v';
  assert.equal(specDoor(s).train.config.model.learnSigma, true);
  assert.equal(resolveTrainCommand({ ...baseFlags(), prediction: 'v' }, FP, VERSION).model.learnSigma, true);
  // the old spec key names the new one
  const old = baseSpec();
  old.training.loss = 'v-zsnr';
  assert.throws(
    () => parseSpec(JSON.stringify(old)),
    (err: Error) =>
      err instanceof UserError &&
      /training\.loss: was replaced by training\.prediction/.test(err.message) &&
      /prediction: v/.test(err.message),
  );
});

test('sampling settings walked through both doors give the same plan', () => {
  const cases: { flags: Parameters<typeof samplePlan>[2]; spec: Record<string, unknown> }[] = [
    { flags: { budget: 4, steps: 2 }, spec: { budgets: [4], splits: [2] } },
    { flags: { budget: 4, steps: 4 }, spec: { budgets: [4], splits: [4] } },
    {
      flags: { budget: 4, steps: 2, allocation: 'increasing' },
      spec: { budgets: [4], splits: [2], allocation: 'increasing' },
    },
    {
      flags: { budget: 4, steps: 2, allocation: 'tolerance' },
      spec: { budgets: [4], splits: [2], allocation: 'tolerance' },
    },
    {
      flags: { budget: 4, steps: 2, allocation: 'tolerance', tolerance: 0.01, maxItersPerStep: 5 },
      spec: { budgets: [4], splits: [2], allocation: 'tolerance', tolerance: 0.01, maxItersPerStep: 5 },
    },
  ];
  for (const c of cases) {
    const spec = baseSpec();
    spec.sampling = { ...spec.sampling, ...c.spec };
    const { train, samples } = specDoor(spec);
    const cliPlan = samplePlan(train.config.model, resolveDiffusion(train.config.training), c.flags);
    assert.equal(samples.length, 1);
    assert.deepEqual(cliPlan, samples[0]!.plan, JSON.stringify(c.flags));
  }
});
