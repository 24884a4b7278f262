// Parameter counts of the AutoencoderKL from shapes only (no weight is allocated): the real SD VAE
// (sd-vae-ft-ema/-mse, 83,653,863) and the tiny fixture, both as the reference counted them; and the
// shape list equals the tensors of the reference's own ldm file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readSafetensors } from '../../src/io/safetensors.js';
import { SD_VAE_CONFIG, fromDiffusersConfig, fromLdmConfig, parseVaeConfig } from '../../src/vae/config.js';
import { countVaeParams, vaeParamSpecs } from '../../src/vae/params.js';
import { VAE_JSON, vaeFixture } from './helpers.js';

test('SD VAE (kl-f8) parameter counts from shapes: encoder 34,163,592, decoder 49,490,179, total 83,653,863, 248 tensors', () => {
  const want = VAE_JSON.sd_vae_ft_reference;
  const got = countVaeParams(fromLdmConfig(want.ldm_config, 'reference ldm config'));
  assert.deepEqual({ ...got }, { ...want.param_counts, tensors: want.num_tensors });
  assert.deepEqual(countVaeParams(SD_VAE_CONFIG), got);
  assert.equal(got.total, 83_653_863);
  assert.equal(got.encoder, 34_163_592);
  assert.equal(got.decoder, 49_490_179);
});

test('tiny fixture VAE: counts equal the reference, and the shape list equals the ldm file tensor for tensor', () => {
  const set = VAE_JSON.sets.vae_tiny;
  const fromDiffusers = fromDiffusersConfig(set.diffusers_config, 'fixture diffusers config');
  const fromLdm = fromLdmConfig(set.ldm_config, 'fixture ldm config');
  assert.deepEqual(fromLdm, fromDiffusers);
  assert.deepEqual({ ...countVaeParams(fromDiffusers) }, { ...set.param_counts, tensors: set.num_tensors });
  const file = readSafetensors(vaeFixture('vae_tiny.ldm.safetensors')).tensors;
  const specs = vaeParamSpecs(fromDiffusers);
  assert.deepEqual(specs.map((s) => s.name).sort(), [...file.keys()].sort());
  for (const s of specs) assert.deepEqual(file.get(s.name)!.shape, s.shape, s.name);
});

test('VAE configs: unsupported variants and bad values are refused with the key named', () => {
  assert.throws(
    () => parseVaeConfig({ block_out_channels: [32, 48], norm_num_groups: 32 }, 'cfg'),
    /48 channels are not divisible into 32 GroupNorm groups/,
  );
  assert.throws(() => parseVaeConfig({ _class_name: 'AutoencoderTiny' }, 'cfg'), /_class_name is 'AutoencoderTiny'/);
  assert.throws(
    () => parseVaeConfig({ block_out_channels: [32], use_quant_conv: false }, 'cfg'),
    /use_quant_conv: false/,
  );
  assert.throws(() => parseVaeConfig({ hello: 1 }, 'cfg'), /not a VAE config/);
  assert.throws(
    () => parseVaeConfig({ ch: 32, ch_mult: [1, 2], num_res_blocks: 1, z_channels: 4, attn_resolutions: [16] }, 'cfg'),
    /attn_resolutions/,
  );
});
