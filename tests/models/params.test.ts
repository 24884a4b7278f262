// Configs, presets, the parameter tree: counts to the unit (reference/param_counts.json, fixtures.json),
// reference-kwarg mapping, load/export by PyTorch names with clear errors, reference initialisation.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs-core';
import { Rng } from '../../src/util/rng.js';
import { UserError } from '../../src/util/errors.js';
import { readSafetensors } from '../../src/io/safetensors.js';
import { f32, type TensorMap } from '../../src/io/tensor.js';
import {
  countParams,
  createModel,
  ditPreset,
  exportStateDict,
  fpdmFrom,
  fromReferenceKwargs,
  loadStateDict,
  modelFromStateDict,
  modelName,
  modelParamCount,
  paramSpecs,
  PRESET_NAMES,
  toReferenceKwargs,
} from '../../src/models/index.js';
import { fixture, useBackend } from '../helpers.js';
import { tinyConfig } from './helpers.js';

const REF_COUNTS = JSON.parse(readFileSync(fixture('param_counts.json'), 'utf8'))
  .param_counts_latent32x32x4_1000cls_learn_sigma as Record<string, number>;

test('every count in reference/param_counts.json, to the unit, from the shape tree', () => {
  let checked = 0;
  for (const [name, expected] of Object.entries(REF_COUNTS)) {
    const m = /^FPDM\((DiT-\w+\/\d), pre=(\d+), post=(\d+)\)$/.exec(name);
    const cfg = m ? fpdmFrom(ditPreset(m[1]!), { preDepth: Number(m[2]), postDepth: Number(m[3]) }) : ditPreset(name);
    assert.equal(modelName(cfg), name);
    assert.equal(countParams(cfg).total, expected, name);
    checked++;
  }
  assert.equal(checked, 21);
  // the paper's unconditional numbers (ANCHORS.md): 673,683,872 vs 85,349,408 with one class
  assert.equal(countParams(ditPreset('DiT-XL/2', { numClasses: 1 })).total, 673_683_872);
  assert.equal(countParams(fpdmFrom(ditPreset('DiT-XL/2', { numClasses: 1 }))).total, 85_349_408);
  assert.equal(PRESET_NAMES.length, 12);
});

test('tiny fixture models: counts equal fixtures.json, specs equal the fixture state_dict shapes', () => {
  const fx = JSON.parse(readFileSync(fixture('fixtures.json'), 'utf8')) as Record<
    string,
    { params: number; tensors: Record<string, number[]> }
  >;
  for (const name of ['dit_tiny', 'fpdm_tiny'] as const) {
    const cfg = tinyConfig(name);
    assert.equal(countParams(cfg).total, fx[name]!.params, name);
    const specs = Object.fromEntries(paramSpecs(cfg).map((s) => [s.name, s.shape]));
    const { pos_embed: _pe, ...fixtureShapes } = fx[name]!.tensors;
    assert.deepEqual(specs, fixtureShapes, name);
  }
  const by = countParams(tinyConfig('fpdm_tiny')).byModule;
  assert.equal(by.block_fixed_point_projection_fc1, 128 * 128 + 128);
  assert.equal(
    Object.values(by).reduce((a, b) => a + b, 0),
    countParams(tinyConfig('fpdm_tiny')).total,
  );
});

test('reference keyword arguments: mapping, defaults, round trip, unknown keys and bad types', () => {
  const c = fromReferenceKwargs({
    fixed_point: true,
    hidden_size: 384,
    num_heads: 6,
    depth: 12,
    fixed_point_pre_post_timestep_conditioning: false,
  });
  assert.equal(c.kind, 'fpdm');
  if (c.kind !== 'fpdm') return;
  assert.deepEqual(
    [c.preDepth, c.postDepth, c.noGradIters, c.withGradIters, c.prePostTimestepConditioning],
    [1, 1, [0, 10], [1, 12], false],
  );
  assert.equal(modelName(c), 'FPDM(DiT-S/2, pre=1, post=1)');
  assert.deepEqual(fromReferenceKwargs(toReferenceKwargs(c)), c);
  assert.deepEqual(fromReferenceKwargs({}), ditPreset('DiT-XL/2'));
  assert.throws(
    () => fromReferenceKwargs({ hidden_sise: 64 }),
    (e: unknown) => e instanceof UserError && /unknown key\(s\) 'hidden_sise'/.test(e.message),
  );
  assert.throws(
    () => fromReferenceKwargs({ depth: '12' }),
    (e: unknown) => e instanceof UserError && /'depth'/.test(e.message),
  );
  assert.throws(() => fromReferenceKwargs({ hidden_size: 65 }), UserError);
  assert.throws(
    () =>
      fromReferenceKwargs({
        fixed_point: true,
        fixed_point_with_grad_min_iters: 5,
        fixed_point_with_grad_max_iters: 2,
      }),
    /withGradIters/,
  );
  assert.throws(
    () => ditPreset('DiT-M/2'),
    (e: unknown) => e instanceof UserError && /does not exist/.test(e.message),
  );
});

test('load/export by PyTorch names; shape mismatch names the first tensor; missing and unexpected are listed', async () => {
  await useBackend('cpu');
  const sd = readSafetensors(fixture('dit_tiny.safetensors')).tensors;
  const cfg = tinyConfig('dit_tiny');
  const before = tf.memory().numTensors;
  const { model } = modelFromStateDict(cfg, sd);
  const exported = await exportStateDict(model);
  const again = createModel(cfg, 5);
  loadStateDict(again, exported);
  const e2 = await exportStateDict(again);
  for (const [k, v] of exported) assert.deepEqual(e2.get(k)!.data, v.data, k);
  model.dispose();
  again.dispose();
  assert.equal(tf.memory().numTensors, before, 'load/dispose leaked');

  const bad: TensorMap = new Map(sd);
  bad.set('blocks.1.mlp.fc1.weight', f32([255, 64], new Float32Array(255 * 64)));
  assert.throws(
    () => modelFromStateDict(cfg, bad),
    (e: unknown) =>
      e instanceof UserError && /'blocks\.1\.mlp\.fc1\.weight' has shape \[255, 64\].*\[256, 64\]/.test(e.message),
  );
  const missing: TensorMap = new Map(sd);
  missing.delete('final_layer.linear.bias');
  assert.throws(() => modelFromStateDict(cfg, missing), /lacks 1 tensor\(s\).*final_layer\.linear\.bias/);
  const fpdmSd = readSafetensors(fixture('fpdm_tiny.safetensors')).tensors;
  assert.throws(
    () => modelFromStateDict(cfg, fpdmSd),
    (e: unknown) => e instanceof UserError && /blocks\.0/.test(e.message),
  );
  const extra: TensorMap = new Map(sd);
  extra.set('something.else', f32([1], [0]));
  assert.throws(() => modelFromStateDict(cfg, extra), /does not have: something\.else/);
  const { model: lax, report } = modelFromStateDict(cfg, extra, { strict: false });
  assert.deepEqual(report.unexpected, ['something.else']);
  lax.dispose();
  assert.equal(tf.memory().numTensors, before);
});

const maxAbs = (a: Float32Array): number => a.reduce((m, v) => Math.max(m, Math.abs(v)), 0);

test('reference initialisation: zeros where adaLN-Zero puts them, xavier bounds, N(0, 0.02²) embeddings, seed-determined', async () => {
  await useBackend('cpu');
  const cfg = fpdmFrom(ditPreset('DiT-S/8', { inputSize: 16, numClasses: 10 }));
  const m = createModel(cfg, new Rng(11));
  const m2 = createModel(cfg, new Rng(11));
  const get = (name: string): Float32Array => m.params.get(name)!.dataSync() as Float32Array;
  for (const name of [
    'blocks_pre.0.adaLN_modulation.1.weight',
    'block_fixed_point.adaLN_modulation.1.bias',
    'final_layer.linear.weight',
    'final_layer.adaLN_modulation.1.weight',
    'blocks_post.0.attn.qkv.bias',
  ]) {
    assert.ok(
      get(name).every((v) => v === 0),
      `${name} is zero`,
    );
  }
  const qkv = get('block_fixed_point.attn.qkv.weight');
  const bound = Math.sqrt(6 / (384 + 3 * 384));
  assert.ok(qkv.every((v) => Math.abs(v) <= bound) && maxAbs(qkv) > 0.95 * bound);
  const pw = get('x_embedder.proj.weight'); // fan_in = C·P·P = 256, fan_out = 384
  assert.ok(maxAbs(pw) <= Math.sqrt(6 / (256 + 384)));
  const table = get('y_embedder.embedding_table.weight');
  const std = Math.sqrt(table.reduce((s, v) => s + v * v, 0) / table.length);
  assert.ok(Math.abs(std - 0.02) < 0.002, `table std ${std}`);
  for (const [k, v] of m.params)
    assert.deepEqual(v.dataSync(), m2.params.get(k)!.dataSync(), `${k} differs for the same seed`);
  assert.equal(modelParamCount(m).total, countParams(cfg).total);
  m.dispose();
  m2.dispose();
});
