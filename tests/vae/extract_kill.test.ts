// `latents extract` killed (SIGKILL) while it writes, then run again with the same command: the folder
// ends complete and byte-identical to an extraction that was never interrupted.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { writePng } from '../../src/data/images.js';
import { Rng } from '../../src/util/rng.js';
import { ROOT, runCli } from '../cli.js';
import { vaeFixture } from './helpers.js';

const N = 48;

test(
  'latents extract: SIGKILL mid-way, re-run → complete and identical to an uninterrupted extraction',
  { timeout: 300_000 },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vae-kill-'));
    try {
      const images = join(dir, 'images');
      const rng = new Rng(9);
      for (let i = 0; i < N; i++) {
        const cls = join(images, `c${i % 3}`);
        mkdirSync(cls, { recursive: true });
        await writePng(
          join(cls, `${String(i).padStart(3, '0')}.png`),
          Uint8Array.from({ length: 3 * 32 * 32 }, () => rng.int(0, 255)),
          [3, 32, 32],
        );
      }
      const args = (out: string) => [
        '--backend',
        'wasm',
        'latents',
        'extract',
        '--vae',
        vaeFixture('vae_tiny.ldm.safetensors'),
        '--config',
        vaeFixture('vae_tiny.config.json'),
        '--images',
        images,
        '--out',
        out,
        '--image-size',
        '32',
        '--batch',
        '2',
        '--progress',
        'none',
      ];
      const whole = join(dir, 'whole');
      assert.equal(runCli(args(whole)).code, 0);
      const killed = join(dir, 'killed');
      const labels = join(killed, 'imagenet256_labels');
      const child = spawn(
        process.execPath,
        ['--import', 'tsx', resolve(ROOT, 'src', 'cli', 'run.ts'), ...args(killed)],
        { cwd: ROOT, stdio: 'ignore' },
      );
      const exited = new Promise<void>((res) => child.on('exit', () => res()));
      // kill as soon as a few items are written
      for (
        let k = 0;
        k < 3000 && !(existsSync(labels) && readdirSync(labels).filter((f) => f.endsWith('.npy')).length >= 4);
        k++
      )
        await new Promise((r) => setTimeout(r, 10));
      child.kill('SIGKILL');
      await exited;
      const before = readdirSync(labels).filter((f) => f.endsWith('.npy')).length;
      assert.ok(before < N, `the extraction was killed before it finished (${before} of ${N} written)`);
      const r = runCli([...args(killed), '--json']);
      assert.equal(r.code, 0, r.stderr);
      const out = JSON.parse(r.stdout);
      assert.equal(out.resumed, true);
      assert.equal(out.written, N - before);
      for (const sub of ['imagenet256_features', 'imagenet256_labels']) {
        for (let i = 0; i < N; i++)
          assert.deepEqual(
            readFileSync(join(killed, sub, `${i}.npy`)),
            readFileSync(join(whole, sub, `${i}.npy`)),
            `${sub}/${i}.npy`,
          );
      }
      assert.equal(JSON.parse(readFileSync(join(killed, 'latents.json'), 'utf8')).complete, true);
      // nothing else in the two folders (the reference's loader counts every entry)
      for (const sub of ['imagenet256_features', 'imagenet256_labels'])
        assert.equal(readdirSync(join(killed, sub)).length, N, sub);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
