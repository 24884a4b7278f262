// Specs on latent datasets: the model sees the folder's latent shape (channels E, side h), and the
// latent-specific mistakes are spec errors naming their path.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseSpec } from '../../src/experiments/spec.js';
import { resolveModel } from '../../src/experiments/planner.js';
import { UserError } from '../../src/util/errors.js';
import { vaeFixture } from './helpers.js';

const LATENTS = JSON.stringify(vaeFixture('vae_tiny.latents'));
const VAE = `vae: {path: ${JSON.stringify(vaeFixture('vae_tiny.ldm.safetensors'))}, config: ${JSON.stringify(vaeFixture('vae_tiny.config.json'))}, variant: mse}`;
const spec = (dataset: string, extra = VAE, metrics = '[fid]') => `name: lat
dataset: ${dataset}
${extra}
models:
  dit: {kind: dit, hiddenSize: 16, depth: 3, heads: 2, patchSize: 4}
training: {steps: 2, batchSize: 2, lr: 0.001, diffusionSteps: 100}
sampling: {budgets: [2], samples: 2, batchSize: 2}
metrics: ${metrics}
seeds: [0]
`;

test('a latents dataset gives the model its latent channels and side; vae is recorded in the spec', () => {
  const s = parseSpec(spec(`{kind: latents, path: ${LATENTS}, classes: 11}`));
  const v = s.variants[0]!.spec;
  const m = resolveModel(v, 'dit');
  assert.deepEqual([m.inChannels, m.inputSize, m.numClasses], [4, 16, 11]);
  assert.equal(v.vae?.variant, 'mse');
});

test('latent spec mistakes name their path', () => {
  const bad = (text: string, re: RegExp) =>
    assert.throws(
      () => parseSpec(text, 'bad.yaml'),
      (e) => e instanceof UserError && re.test(e.message),
      String(re),
    );
  bad(spec(`{kind: latents, path: ${LATENTS}}`, ''), /vae.*is missing.*fid/s);
  bad(spec(`{kind: latents, path: ${LATENTS}, hflip: true}`), /dataset\.hflip/);
  bad(spec(`{kind: latents, path: ${LATENTS}, channels: 3}`), /dataset\.channels/);
  bad(spec(`{kind: latents, path: ${LATENTS}, imageSize: 32}`), /dataset\.imageSize.*16×16/s);
  bad(spec('{kind: latents}'), /dataset\.path.*is missing/s);
  bad(spec(`{kind: latents, path: ${JSON.stringify(vaeFixture('.'))}}`), /dataset\.path.*no <name>_features/s);
  bad(spec('{kind: synthetic, imageSize: 8, size: 8}', VAE, '[params]'), /vae.*decodes latent datasets only/s);
});
