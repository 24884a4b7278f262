// Latent datasets: the .npy layout written byte for byte as the reference (vae_tiny.latents), read back
// paired by file name, and `latents extract` on the fixture's own images reproducing the reference's
// posterior (mean; sample = mean + std·ε with this tool's ε) ×0.18215, resumable, settings recorded,
// and broken latent folders refused naming the file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
  unlinkSync,
  copyFileSync,
  cpSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writePng } from '../../src/data/images.js';
import { openDataset } from '../../src/data/index.js';
import { encodeFeature, encodeLabel, readLatentBatch, scanLatentFolder } from '../../src/data/latents.js';
import { encodeNpy } from '../../src/io/npy.js';
import { toFloat32 } from '../../src/io/tensor.js';
import { UserError } from '../../src/util/errors.js';
import { Rng } from '../../src/util/rng.js';
import { runExtract } from '../../src/cli/commands/latents.js';
import { runCli } from '../cli.js';
import { ref, vaeFixture, vaeIo, worstAbsOrRel } from './helpers.js';

const LATENTS = vaeFixture('vae_tiny.latents');
const CONFIG = vaeFixture('vae_tiny.config.json');
const LABELS = [3, 10]; // what the fixture's label files hold

test('writer: features and labels are byte-identical to the reference np.save files', () => {
  const latent = toFloat32(vaeIo().get('latent')!); // float64 reference → float32, as extract_features saves
  const per = 4 * 16 * 16;
  for (let i = 0; i < 2; i++) {
    const want = readFileSync(join(LATENTS, 'imagenet256_features', `${i}.npy`));
    assert.deepEqual(
      Buffer.from(encodeFeature(latent.slice(i * per, (i + 1) * per), [4, 16, 16])),
      want,
      `features/${i}.npy`,
    );
    assert.deepEqual(
      Buffer.from(encodeLabel(LABELS[i]!)),
      readFileSync(join(LATENTS, 'imagenet256_labels', `${i}.npy`)),
      `labels/${i}.npy`,
    );
  }
});

test('reader: the reference latent folder is a dataset (name detected, pairs by file name, shape, labels)', () => {
  const lf = scanLatentFolder(LATENTS);
  assert.equal(lf.name, 'imagenet256');
  assert.deepEqual(lf.files, ['0.npy', '1.npy']);
  assert.deepEqual([...lf.labels], LABELS);
  assert.deepEqual(lf.shape, [4, 16, 16]);
  const b = readLatentBatch(lf, [1, 0]);
  const latent = toFloat32(vaeIo().get('latent')!);
  assert.deepEqual([...b.y], [10, 3]);
  assert.deepEqual(b.x.slice(0, 1024), latent.slice(1024, 2048));
  assert.match(lf.fingerprint, /^[0-9a-f]{64}$/);
});

test('openDataset({kind: latents}): the reference folder as a dataset of [N, 4, 16, 16] latents with its labels', async () => {
  const ds = await openDataset({ kind: 'latents', path: LATENTS });
  assert.deepEqual([ds.kind, ds.size, ds.channels, ds.imageSize, ds.numClasses], ['latents', 2, 4, 16, 11]);
  const b = await ds.batch([0, 1]);
  assert.deepEqual(b.shape, [2, 4, 16, 16]);
  assert.deepEqual([...b.y], LABELS);
  assert.deepEqual(b.x, toFloat32(vaeIo().get('latent')!));
  await assert.rejects(
    openDataset({ kind: 'latents', path: LATENTS, name: 'other' }),
    (e) => e instanceof UserError && /other_features' is missing/.test(e.message),
  );
});

test('reader: numeric order (2 before 10), and broken folders are refused naming the file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lat-bad-'));
  try {
    const f = join(dir, 'x_features');
    const l = join(dir, 'x_labels');
    mkdirSync(f);
    mkdirSync(l);
    for (const i of [10, 2, 0]) {
      writeFileSync(join(f, `${i}.npy`), encodeFeature(new Float32Array(8).fill(i), [2, 2, 2]));
      writeFileSync(join(l, `${i}.npy`), encodeLabel(i % 3));
    }
    assert.deepEqual(scanLatentFolder(dir).files, ['0.npy', '2.npy', '10.npy']);
    const isUser = (re: RegExp) => (e: unknown) => e instanceof UserError && re.test(e.message);
    unlinkSync(join(l, '2.npy'));
    assert.throws(() => scanLatentFolder(dir), isUser(/x_features\/2\.npy' has no label file/));
    writeFileSync(join(l, '2.npy'), encodeNpy({ dtype: 'F32', shape: [1], data: Float32Array.of(1) }));
    assert.throws(() => scanLatentFolder(dir), isUser(/x_labels\/2\.npy' is F32 of shape \(1\), expected int64/));
    writeFileSync(join(l, '2.npy'), encodeLabel(1));
    writeFileSync(join(f, '10.npy'), encodeFeature(new Float32Array(12), [3, 2, 2]));
    assert.throws(
      () => scanLatentFolder(dir),
      isUser(/10\.npy' has shape \(1, 3, 2, 2\), the others have \(1, 2, 2, 2\)/),
    );
    writeFileSync(join(f, '10.npy'), 'garbage');
    assert.throws(() => scanLatentFolder(dir), isUser(/10\.npy/));
    assert.throws(() => scanLatentFolder(join(dir, 'nope')), isUser(/does not exist/));
    mkdirSync(join(dir, 'y_features'));
    assert.throws(() => scanLatentFolder(dir), isUser(/several latent sets/));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** The fixture's two 32×32 images as PNGs in class folders a/ (image 0) and b/ (image 1). */
function imageFolder(dir: string): Promise<void[]> {
  const u8 = vaeIo().get('image_u8')!; // [2, 32, 32, 3]
  const data = u8.data as Uint8Array;
  return Promise.all(
    [0, 1].map(async (i) => {
      const hwc = data.subarray(i * 3072, (i + 1) * 3072);
      const chw = new Uint8Array(3072);
      for (let j = 0; j < 1024; j++) for (let c = 0; c < 3; c++) chw[c * 1024 + j] = hwc[j * 3 + c]!;
      mkdirSync(join(dir, 'ab'[i]!), { recursive: true });
      await writePng(join(dir, 'ab'[i]!, `img${i}.png`), chw, [3, 32, 32]);
    }),
  );
}

test('latents extract: posterior mean and sample ×0.18215 equal the reference; resumes after a kill; other settings refused', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lat-extract-'));
  try {
    const images = join(dir, 'images');
    await imageFolder(images);
    const g = { backend: 'wasm' as const, quiet: true };
    const common = {
      vae: vaeFixture('vae_tiny.diffusers.safetensors'),
      config: CONFIG,
      images,
      imageSize: 32,
      hflip: 'none' as const,
      progress: 'none' as const,
    };
    // mean
    const outMean = join(dir, 'mean');
    const rm = await runExtract({ ...common, out: outMean, posterior: 'mean' }, g);
    assert.equal(rm.count, 2);
    const lm = scanLatentFolder(outMean);
    assert.deepEqual([...lm.labels], [0, 1]);
    const got = readLatentBatch(lm, [0, 1]).x;
    const mean = ref('mean').map((v) => v * 0.18215);
    assert.equal(worstAbsOrRel(got, mean).failures, 0);
    // sample: mean + std·ε, ε of item i from the generator keyed by (seed, i)
    const outSample = join(dir, 'sample');
    await runExtract({ ...common, out: outSample, seed: 7 }, g);
    const std = ref('std');
    const m = ref('mean');
    const want = new Float64Array(2048);
    for (let i = 0; i < 2; i++) {
      const rng = new Rng(`7/latents/${i}`);
      rng.uniform(); // the flip draw comes first (unused with hflip none)
      const eps = rng.normals(1024);
      for (let j = 0; j < 1024; j++) want[i * 1024 + j] = (m[i * 1024 + j]! + std[i * 1024 + j]! * eps[j]!) * 0.18215;
    }
    assert.equal(worstAbsOrRel(readLatentBatch(scanLatentFolder(outSample), [0, 1]).x, want).failures, 0);
    const manifest = JSON.parse(readFileSync(join(outSample, 'latents.json'), 'utf8'));
    assert.equal(manifest.complete, true);
    assert.deepEqual(manifest.settings.posterior, 'sample');
    assert.match(manifest.settings.vaeFingerprint, /^[0-9a-f]{64}$/);
    assert.deepEqual(manifest.images.classNames, ['a', 'b']);
    // a kill after item 0: item 1's label (the completion mark) and feature missing, a stale temporary file
    const before = readFileSync(join(outSample, 'imagenet256_features', '1.npy'));
    unlinkSync(join(outSample, 'imagenet256_labels', '1.npy'));
    unlinkSync(join(outSample, 'imagenet256_features', '1.npy'));
    writeFileSync(join(outSample, 'imagenet256_features', '.1.npy.tmp-99999'), 'partial');
    const r2 = await runExtract({ ...common, out: outSample, seed: 7 }, g);
    assert.equal(r2.written, 1);
    assert.equal(r2.resumed, true);
    assert.deepEqual(readFileSync(join(outSample, 'imagenet256_features', '1.npy')), before);
    assert.equal(scanLatentFolder(outSample).files.length, 2);
    assert.deepEqual(
      readdirSync(join(outSample, 'imagenet256_features')).sort(),
      ['0.npy', '1.npy'],
      'the stale temporary file is removed',
    );
    // other settings into the same folder: refused, nothing changed
    await assert.rejects(
      runExtract({ ...common, out: outSample, seed: 8 }, g),
      (e) => e instanceof UserError && /seed: 7 \(stored\) vs 8 \(now\)/.test(e.message),
    );
    assert.deepEqual(readFileSync(join(outSample, 'imagenet256_features', '1.npy')), before);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('latents extract --hflip random: the items whose flip draw is < 1/2 equal the extraction of mirrored images, the others the originals', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lat-flip-'));
  try {
    const images = join(dir, 'images');
    await imageFolder(images);
    // the same two images mirrored left–right
    const mirrored = join(dir, 'mirrored');
    const u8 = vaeIo().get('image_u8')!.data as Uint8Array;
    for (let i = 0; i < 2; i++) {
      const chw = new Uint8Array(3072);
      for (let y = 0; y < 32; y++)
        for (let x = 0; x < 32; x++)
          for (let c = 0; c < 3; c++) chw[c * 1024 + y * 32 + x] = u8[i * 3072 + (y * 32 + 31 - x) * 3 + c]!;
      mkdirSync(join(mirrored, 'ab'[i]!), { recursive: true });
      await writePng(join(mirrored, 'ab'[i]!, `img${i}.png`), chw, [3, 32, 32]);
    }
    const g = { backend: 'wasm' as const, quiet: true };
    const common = {
      vae: vaeFixture('vae_tiny.ldm.safetensors'),
      config: CONFIG,
      imageSize: 32,
      posterior: 'mean' as const,
      progress: 'none' as const,
      batch: 1,
    };
    const seed = 2; // item 0 flipped, item 1 not
    await runExtract({ ...common, images, out: join(dir, 'flip'), hflip: 'random', seed }, g);
    await runExtract({ ...common, images, out: join(dir, 'plain'), hflip: 'none', seed }, g);
    await runExtract({ ...common, images: mirrored, out: join(dir, 'mirror'), hflip: 'none', seed }, g);
    const flips = [0, 1].map((i) => new Rng(`${seed}/latents/${i}`).uniform() < 0.5);
    for (let i = 0; i < 2; i++) {
      const got = readFileSync(join(dir, 'flip', 'imagenet256_features', `${i}.npy`));
      const want = readFileSync(join(dir, flips[i] ? 'mirror' : 'plain', 'imagenet256_features', `${i}.npy`));
      assert.deepEqual(got, want, `item ${i} (flipped: ${flips[i]})`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('latents extract / info through the CLI: ldm .ckpt, --name, --json summary; a non-latent folder and a foreign output folder exit 2', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lat-cli-'));
  try {
    const images = join(dir, 'images');
    await imageFolder(images);
    const out = join(dir, 'lat');
    let r = runCli([
      '--backend',
      'wasm',
      'latents',
      'extract',
      '--vae',
      vaeFixture('vae_tiny.ldm.ckpt'),
      '--config',
      CONFIG,
      '--images',
      images,
      '--out',
      out,
      '--image-size',
      '32',
      '--name',
      'tiny',
      '--posterior',
      'mean',
      '--json',
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).count, 2);
    assert.ok(existsSync(join(out, 'tiny_features', '1.npy')));
    r = runCli(['latents', 'info', out, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const inf = JSON.parse(r.stdout);
    assert.deepEqual([inf.name, inf.count, inf.shape, inf.numClasses], ['tiny', 2, [1, 4, 16, 16], 2]);
    r = runCli(['latents', 'info', images]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /has no <name>_features\/ folder/);
    // an output folder that already has latents it did not write
    const foreign = join(dir, 'foreign');
    cpSync(LATENTS, foreign, { recursive: true });
    copyFileSync(join(LATENTS, 'imagenet256_labels', '0.npy'), join(foreign, 'imagenet256_labels', '0.npy'));
    r = runCli([
      '--backend',
      'wasm',
      'latents',
      'extract',
      '--vae',
      vaeFixture('vae_tiny.ldm.ckpt'),
      '--config',
      CONFIG,
      '--images',
      images,
      '--out',
      foreign,
      '--image-size',
      '32',
    ]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /latents\.json' is missing/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
