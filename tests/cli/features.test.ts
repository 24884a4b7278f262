// `fpdm-exp features` with the fixture weights (inception_fid_ternary.legacy.pt) on an images
// safetensors and on a folder of PNGs holding the same pixels: features and block means reproduce
// inception.io.safetensors; then `fid` between the two folders' feature sets is ~0.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { readSafetensors, writeSafetensors } from '../../src/io/safetensors.js';
import { toFloat64 } from '../../src/io/tensor.js';
import { runCli } from '../cli.js';
import { fixture } from '../helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'fpdm-cli-features-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));
const io = readSafetensors(fixture('inception.io.safetensors')).tensors;
const N = 2;
const env = { ...process.env, XDG_CACHE_HOME: join(dir, 'cache') };

function relErr(a: Float64Array, key: string): number {
  const ref = toFloat64(io.get(key)!);
  let m = 0;
  let s = 0;
  for (let i = 0; i < a.length; i++) {
    m = Math.max(m, Math.abs(a[i]! - ref[i]!));
    s = Math.max(s, Math.abs(ref[i]!));
  }
  return m / s;
}

test('features --blocks from an images safetensors and from a PNG folder match the fixture on wasm', async () => {
  const img = io.get('images_uint8_nchw')!.data as Uint8Array; // [6, 3, 32, 32]
  const per = 3 * 32 * 32;
  const inSt = join(dir, 'images.safetensors');
  writeSafetensors(inSt, { images_uint8_nchw: { dtype: 'U8', shape: [N, 3, 32, 32], data: img.slice(0, N * per) } });
  const folder = join(dir, 'pngs');
  mkdirSync(folder);
  for (let i = 0; i < N; i++) {
    const hwc = Buffer.alloc(per);
    for (let j = 0; j < 1024; j++) for (let c = 0; c < 3; c++) hwc[j * 3 + c] = img[i * per + c * 1024 + j]!;
    await sharp(hwc, { raw: { width: 32, height: 32, channels: 3 } })
      .png()
      .toFile(join(folder, `img${i}.png`));
  }
  for (const input of [inSt, folder]) {
    const out = join(dir, `${input === folder ? 'folder' : 'st'}.features.safetensors`);
    const r = runCli(
      [
        '--backend',
        'wasm',
        'features',
        '--weights',
        fixture('inception_fid_ternary.legacy.pt'),
        '--images',
        input,
        '--out',
        out,
        '--blocks',
        '--logits',
        '--batch',
        '2',
        '--json',
      ],
      { env },
    );
    assert.equal(r.code, 0, r.stderr);
    const { tensors, metadata } = readSafetensors(out);
    assert.equal(metadata.mode, 'pytorch-fid');
    assert.deepEqual(tensors.get('features')!.shape, [N, 2048]);
    assert.deepEqual(tensors.get('logits')!.shape, [N, 1008]);
    for (const [k, ref] of [
      ['features', 'features_2048'],
      ['block0_64_spatial_mean', 'block0_64_spatial_mean'],
      ['block1_192_spatial_mean', 'block1_192_spatial_mean'],
      ['block2_768_spatial_mean', 'block2_768_spatial_mean'],
    ] as const) {
      const e = relErr(toFloat64(tensors.get(k)!), ref);
      assert.ok(e <= 1e-4, `${input}: ${k} relative error ${e}`);
    }
  }
  // the two feature files hold the same features: FID between them is ~0 (2 samples: singular Σ path)
  const f = runCli(['fid', join(dir, 'st.features.safetensors'), join(dir, 'folder.features.safetensors'), '--json'], {
    env,
  });
  assert.equal(f.code, 0, f.stderr);
  assert.ok(Math.abs((JSON.parse(f.stdout) as { value: number }).value) < 1e-3);
});

test('fid on images computes statistics once: the second identical input hits the (images, weights, mode, N) cache', () => {
  const imgs = join(dir, 'images.safetensors'); // written by the first test
  const r = runCli(
    [
      '--backend',
      'wasm',
      'fid',
      imgs,
      imgs,
      '--weights',
      fixture('inception_fid_ternary.legacy.pt'),
      '--batch',
      '2',
      '--json',
    ],
    { env },
  );
  assert.equal(r.code, 0, r.stderr);
  assert.equal((r.stderr.match(/using cached statistics/g) ?? []).length, 1, r.stderr);
  const j = JSON.parse(r.stdout) as {
    value: number;
    inputs: { kind: string; cached?: boolean; mode: string }[];
    backend: { name: string };
  };
  assert.ok(Math.abs(j.value) < 1e-6, String(j.value));
  assert.deepEqual(
    j.inputs.map((i) => [i.kind, i.cached, i.mode]),
    [
      ['images', false, 'pytorch-fid'],
      ['images', true, 'pytorch-fid'],
    ],
  );
  assert.equal(j.backend.name, 'wasm');
});

test('features refuses a missing input with exit 2', () => {
  const r = runCli(
    [
      'features',
      '--weights',
      fixture('inception_fid_ternary.legacy.pt'),
      '--images',
      join(dir, 'missing'),
      '--out',
      join(dir, 'x.safetensors'),
    ],
    { env },
  );
  assert.equal(r.code, 2);
  assert.match(r.stderr, /does not exist/);
});
