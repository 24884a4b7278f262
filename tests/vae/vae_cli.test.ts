// `fpdm-exp vae run` through the CLI, as a user compares with the reference: for every weight form and
// every test backend (cpu, wasm; FPDM_TEST_BACKENDS adds webgpu), mean, logvar, std, sample, latent and
// dec reproduce vae_tiny.io within 1e-4 abs or rel (the first form through a child process, the
// others through the same command function in-process). Bad VAE files exit 2 naming the file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readSafetensors } from '../../src/io/safetensors.js';
import { toFloat64 } from '../../src/io/tensor.js';
import { run as vaeRun } from '../../src/cli/commands/vae.js';
import { runCli } from '../cli.js';
import { TEST_BACKENDS } from '../helpers.js';
import { WEIGHT_FORMS, ref, vaeFixture, worstAbsOrRel } from './helpers.js';

const CONFIG = vaeFixture('vae_tiny.config.json');
const IO = vaeFixture('vae_tiny.io.safetensors');

for (const backend of TEST_BACKENDS) {
  test(`vae run on ${backend}: every weight form reproduces the reference io`, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vae-run-'));
    try {
      for (const [i, f] of WEIGHT_FORMS.entries()) {
        const out = join(dir, `out${i}.safetensors`);
        if (i === 0) {
          const r = runCli([
            '--backend',
            backend,
            'vae',
            'run',
            '--vae',
            vaeFixture(f.file),
            '--config',
            CONFIG,
            '--inputs',
            IO,
            '--out',
            out,
            '--json',
          ]);
          assert.equal(r.code, 0, `${f.name}: ${r.stderr}`);
        } else {
          // the command function itself (what the CLI calls), in this process to save start-up time
          await vaeRun({ vae: vaeFixture(f.file), config: CONFIG, inputs: IO, out }, { backend, quiet: true });
        }
        const got = readSafetensors(out).tensors;
        for (const name of ['mean', 'logvar', 'std', 'sample', 'latent', 'dec']) {
          const t = got.get(name);
          assert.ok(t, `${f.name}: ${name} not written`);
          const c = worstAbsOrRel(toFloat64(t), ref(name));
          assert.equal(c.failures, 0, `${f.name} ${name}: ${c.failures} values outside 1e-4 (max abs ${c.maxAbs})`);
        }
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

test('vae run / info: a corrupt, foreign or missing VAE exits 2 with one message naming the file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vae-bad-cli-'));
  try {
    const junk = join(dir, 'junk.safetensors');
    writeFileSync(junk, 'this is not a weights file at all');
    const out = join(dir, 'o.safetensors');
    let r = runCli(['--backend', 'wasm', 'vae', 'run', '--vae', junk, '--inputs', IO, '--out', out]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /junk\.safetensors/);
    assert.doesNotMatch(r.stderr, /internal error/);
    r = runCli(['vae', 'info', '--vae', join(dir, 'absent')]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /absent' does not exist/);
    // a DiT-shaped inputs file for the VAE: the input named
    r = runCli([
      '--backend',
      'wasm',
      'vae',
      'run',
      '--vae',
      vaeFixture('vae_tiny.ldm.safetensors'),
      '--config',
      CONFIG,
      '--inputs',
      vaeFixture('vae_tiny.ldm.safetensors'),
      '--out',
      out,
    ]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /neither 'x'.*nor 'z'/);
    r = runCli(['vae', 'info', '--vae', vaeFixture('vae_tiny.diffusers.safetensors'), '--config', CONFIG, '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).params.total, 658_375);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
