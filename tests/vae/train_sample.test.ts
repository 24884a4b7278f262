// The train and sample commands on latents: `train --data latents:DIR` fits the model to the folder's
// latents (4×16×16 here), `sample --ckpt DIR --vae …` decodes its samples to images (grid, PNGs, arr_0
// .npz); --npz without a VAE is refused before any work.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readNpz } from '../../src/io/npy.js';
import { runCli } from '../cli.js';
import { vaeFixture } from './helpers.js';

test('train --data latents:DIR, then sample --vae: decoded PNGs and an arr_0 .npz', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vae-train-'));
  try {
    const ckpt = join(dir, 'ckpt');
    let r = runCli([
      '--backend',
      'wasm',
      'train',
      '--data',
      `latents:${vaeFixture('vae_tiny.latents')}`,
      '--classes',
      '11',
      '--hidden-size',
      '16',
      '--depth',
      '2',
      '--heads',
      '2',
      '--patch-size',
      '4',
      '--steps',
      '2',
      '--batch-size',
      '2',
      '--out',
      ckpt,
    ]);
    assert.equal(r.code, 0, r.stderr);
    const base = [
      '--backend',
      'wasm',
      'sample',
      '--ckpt',
      ckpt,
      '--steps',
      '3',
      '--samples',
      '3',
      '--out',
      join(dir, 'grid.png'),
    ];
    r = runCli([...base, '--npz', join(dir, 's.npz')]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--npz writes decoded images: give --vae/);
    r = runCli([
      ...base,
      '--vae',
      vaeFixture('vae_tiny.diffusers.safetensors'),
      '--vae-config',
      vaeFixture('vae_tiny.config.json'),
      '--npz',
      join(dir, 's.npz'),
      '--save',
      join(dir, 'png'),
      '--png-naming',
      'dit',
    ]);
    assert.equal(r.code, 0, r.stderr);
    const arr = readNpz(join(dir, 's.npz')).get('arr_0')!;
    assert.deepEqual([arr.dtype, arr.shape], ['U8', [3, 32, 32, 3]]);
    assert.deepEqual(readdirSync(join(dir, 'png')).sort(), ['000000.png', '000001.png', '000002.png']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
