// End to end through the CLI, on a tiny random VAE (the vae_tiny fixture: 2× downsampling, 4 latent
// channels): an image folder → `latents extract` → a short `run` of DiT and FPDM on the latents →
// samples decoded by the VAE → FID (test Inception weights) against the decoded reference latents,
// stored with the VAE's identity; the sample grid holds decoded 32×32 RGB images.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import Database from 'better-sqlite3';
import { readImage, writePng } from '../../src/data/images.js';
import { Rng } from '../../src/util/rng.js';
import { runCli } from '../cli.js';
import { fixture } from '../helpers.js';
import { vaeFixture } from './helpers.js';

/** 8 images 40×36 (cropped to 32 by the ADM crop) in 2 classes: smooth colour ramps, different per class. */
async function makeImages(dir: string): Promise<void> {
  const rng = new Rng(5);
  for (let i = 0; i < 8; i++) {
    const cls = i % 2 ? 'b' : 'a';
    mkdirSync(join(dir, cls), { recursive: true });
    const [h, w] = [36, 40];
    const img = new Uint8Array(3 * h * w);
    const phase = rng.uniform() * 6;
    for (let c = 0; c < 3; c++)
      for (let y = 0; y < h; y++)
        for (let x = 0; x < w; x++) {
          img[(c * h + y) * w + x] = Math.round(127.5 + 120 * Math.sin(phase + (cls === 'a' ? x : y) / 6 + c));
        }
    await writePng(join(dir, cls, `${i}.png`), img, [3, h, w]);
  }
}

test(
  'image folder → latents extract → run (DiT + FPDM on latents) → decoded samples → FID',
  { timeout: 300_000 },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vae-e2e-'));
    try {
      const images = join(dir, 'images');
      await makeImages(images);
      const latents = join(dir, 'latents');
      const vae = vaeFixture('vae_tiny.diffusers.safetensors');
      const vaeCfg = vaeFixture('vae_tiny.config.json');
      let r = runCli([
        '--backend',
        'wasm',
        'latents',
        'extract',
        '--vae',
        vae,
        '--config',
        vaeCfg,
        '--images',
        images,
        '--out',
        latents,
        '--image-size',
        '32',
        '--progress',
        'none',
      ]);
      assert.equal(r.code, 0, r.stderr);
      const spec = join(dir, 'spec.yaml');
      writeFileSync(
        spec,
        `name: latent-e2e
dataset: {kind: latents, path: ${JSON.stringify(latents)}, classes: 2}
vae: {path: ${JSON.stringify(vae)}, config: ${JSON.stringify(vaeCfg)}, variant: ema}
models:
  dit: {kind: dit, hiddenSize: 16, depth: 3, heads: 2, patchSize: 4}
  fpdm: {kind: fpdm, like: dit, pre: 1, post: 1, sjfb: {noGrad: [0, 1], withGrad: [1, 2]}}
training: {steps: 3, batchSize: 4, lr: 0.001, diffusionSteps: 100, logEvery: 1}
sampling: {budgets: [2], splits: [2], samples: 4, batchSize: 4}
metrics: [fid, params]
metricOptions: {inceptionWeights: ${JSON.stringify(fixture('inception_fid_ternary.legacy.pt'))}, referenceImages: 8, gridImages: 4}
seeds: [0]
`,
      );
      const db = join(dir, 'fpdm.sqlite');
      r = runCli([
        '--backend',
        'wasm',
        'run',
        spec,
        '--db',
        db,
        '--artifacts',
        join(dir, 'artifacts'),
        '--no-report',
        '--progress',
        'none',
      ]);
      assert.equal(r.code, 0, r.stderr);
      const con = new Database(db, { readonly: true });
      try {
        const fids = con.prepare("SELECT m.value, m.tags FROM metrics m WHERE m.name = 'fid'").all() as {
          value: number;
          tags: string;
        }[];
        assert.equal(fids.length, 2, 'one FID per model (DiT, FPDM)');
        for (const f of fids) {
          assert.ok(Number.isFinite(f.value) && f.value > 0, `FID ${f.value}`);
          const tags = JSON.parse(f.tags);
          assert.equal(tags.vae, 'ema');
          assert.match(tags.vae_sha256, /^[0-9a-f]{16}$/);
        }
        const grids = con.prepare("SELECT path FROM artifacts WHERE kind = 'sample_grid'").all() as { path: string }[];
        assert.equal(grids.length, 2);
        const g = await readImage(isAbsolute(grids[0]!.path) ? grids[0]!.path : join(dir, grids[0]!.path)); // stored relative to the database
        // 4 decoded 32×32 RGB images in a row with 2 px borders (make_grid): 3 × (32+4) × (4·34+2)
        assert.deepEqual(g.shape, [3, 36, 138]);
      } finally {
        con.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
