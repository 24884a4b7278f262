// `sample --ckpt FILE.pt --vae …` for checkpoints of the reference training code: the architecture
// read from tensor shapes (DiT or FPDM, depth or pre/post depth, latent size, classes, learned sigma),
// the samples decoded by the SD VAE into PNGs named as FPDM's sample.py names them and an arr_0 .npz
// holding the same pixels; a latent model without --vae exits 2.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readImage } from '../../src/data/images.js';
import { readNpz } from '../../src/io/npy.js';
import { writeSafetensors } from '../../src/io/safetensors.js';
import { f32 } from '../../src/io/tensor.js';
import { readReferenceCheckpoint } from '../../src/models/reference_ckpt.js';
import { UserError } from '../../src/util/errors.js';
import { runCli } from '../cli.js';
import { fixture } from '../helpers.js';
import { vaeFixture } from './helpers.js';

const FPDM_KWARGS = {
  input_size: 8,
  patch_size: 2,
  in_channels: 4,
  hidden_size: 64,
  depth: 4,
  num_heads: 4,
  num_classes: 10,
  learn_sigma: true,
  fixed_point: true,
  fixed_point_pre_depth: 1,
  fixed_point_post_depth: 1,
  fixed_point_no_grad_min_iters: 0,
  fixed_point_no_grad_max_iters: 0,
  fixed_point_with_grad_min_iters: 4,
  fixed_point_with_grad_max_iters: 4,
};

test('architecture from shapes: DiT-S/2 and FPDM on a DiT-S/2 trunk at 32×32 latents, 1000 classes + null row; non-preset width asks for --config', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ref-ckpt-'));
  try {
    const z = (shape: number[]) => f32(shape, new Float32Array(shape.reduce((a, b) => a * b, 1)));
    const common = {
      pos_embed: z([1, 256, 384]),
      'x_embedder.proj.weight': z([384, 4, 2, 2]),
      'y_embedder.embedding_table.weight': z([1001, 384]),
      'final_layer.linear.weight': z([32, 384]),
    };
    const dit = join(dir, 'dit.safetensors');
    writeSafetensors(dit, {
      ...common,
      ...Object.fromEntries(Array.from({ length: 12 }, (_, i) => [`blocks.${i}.attn.qkv.bias`, z([1152])])),
    });
    const c = readReferenceCheckpoint(dit).config;
    assert.deepEqual(
      [
        c.kind,
        c.inputSize,
        c.patchSize,
        c.inChannels,
        c.hiddenSize,
        c.depth,
        c.numHeads,
        c.numClasses,
        c.classDropoutProb,
        c.learnSigma,
      ],
      ['dit', 32, 2, 4, 384, 12, 6, 1000, 0.1, true],
    );
    const fp = join(dir, 'fpdm.safetensors');
    writeSafetensors(fp, {
      ...common,
      'blocks_pre.0.attn.qkv.bias': z([1152]),
      'block_fixed_point.attn.qkv.bias': z([1152]),
      'blocks_post.0.attn.qkv.bias': z([1152]),
      'blocks_post.1.attn.qkv.bias': z([1152]),
    });
    const f = readReferenceCheckpoint(fp).config;
    assert.equal(f.kind, 'fpdm');
    if (f.kind === 'fpdm')
      assert.deepEqual([f.preDepth, f.postDepth, f.depth, f.prePostTimestepConditioning], [1, 2, 12, false]);
    assert.throws(
      () => readReferenceCheckpoint(fixture('fpdm_tiny.pt')),
      (e) => e instanceof UserError && /hidden size 64 is not a DiT preset.*--config/.test(e.message),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('sample --ckpt reference.pt --vae: PNGs named {idx:05d}--{y:03d}--{label}.png and an arr_0 .npz with the same pixels', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ref-sample-'));
  try {
    const cfg = join(dir, 'cfg.json');
    writeFileSync(cfg, JSON.stringify(FPDM_KWARGS));
    const names = join(dir, 'names.json');
    writeFileSync(names, JSON.stringify(Array.from({ length: 10 }, (_, i) => `Class ${i}`)));
    const base = [
      '--backend',
      'wasm',
      'sample',
      '--ckpt',
      fixture('fpdm_tiny.pt'),
      '--config',
      cfg,
      '--steps',
      '3',
      '--iters',
      '2',
      '--samples',
      '3',
      '--cfg',
      '2',
      '--out',
      join(dir, 'grid.png'),
    ];
    const r = runCli([
      ...base,
      '--vae',
      vaeFixture('vae_tiny.diffusers.safetensors'),
      '--vae-config',
      vaeFixture('vae_tiny.config.json'),
      '--vae-variant',
      'mse',
      '--npz',
      join(dir, 's.npz'),
      '--save',
      join(dir, 'png'),
      '--label-names',
      names,
      '--json',
    ]);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.equal(out.vae.variant, 'mse');
    assert.equal(out.vae.naming, 'diffusers');
    const arr = readNpz(join(dir, 's.npz')).get('arr_0')!;
    assert.deepEqual([arr.dtype, arr.shape], ['U8', [3, 16, 16, 3]]);
    const files = readdirSync(join(dir, 'png')).sort();
    assert.equal(files.length, 3);
    files.forEach((f, i) => assert.match(f, new RegExp(`^0000${i}--00(\\d)--class-\\1\\.png$`)));
    for (const [i, f] of files.entries()) {
      const img = await readImage(join(dir, 'png', f));
      for (let j = 0; j < 256; j++)
        for (let c = 0; c < 3; c++)
          assert.equal(img.data[c * 256 + j], (arr.data as Uint8Array)[(i * 256 + j) * 3 + c]);
    }
    const bad = runCli(base);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /latent model \(4 channels\): give --vae/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
