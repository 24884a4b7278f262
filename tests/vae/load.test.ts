// Every SD-VAE weight form loads to the same ldm-named state_dict (bitwise), the naming is detected,
// the architecture is inferred from shapes (32 groups) or read from a config (diffusers or ldm keys),
// and wrong or partial weights are refused with the tensor named.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readSafetensors, writeSafetensors } from '../../src/io/safetensors.js';
import { bytesOf } from '../../src/io/tensor.js';
import { UserError } from '../../src/util/errors.js';
import { readVaeConfig } from '../../src/vae/config.js';
import { checkVaeStateDict, inferVaeConfig, loadVae, readVaeStateDict } from '../../src/vae/load.js';
import { useBackend } from '../helpers.js';
import { VAE_JSON, WEIGHT_FORMS, vaeFixture } from './helpers.js';

const CONFIG = vaeFixture('vae_tiny.config.json');

test('every weight form gives the ldm file tensor for tensor (names, shapes as 1×1 convs, bytes)', () => {
  const ldm = readSafetensors(vaeFixture('vae_tiny.ldm.safetensors')).tensors;
  const expect: Record<string, [string, string]> = {
    'vae_tiny.ldm.safetensors': ['ldm', ''],
    'vae_tiny.diffusers.safetensors': ['diffusers', ''],
    'vae_tiny.diffusers_legacy.safetensors': ['diffusers-legacy', ''],
    'vae_tiny.sd.safetensors': ['ldm', 'first_stage_model.'],
    'vae_tiny.ldm.ckpt': ['ldm', 'state_dict.'],
  };
  for (const f of WEIGHT_FORMS) {
    const sd = readVaeStateDict(vaeFixture(f.file));
    assert.deepEqual([sd.naming, sd.prefix], expect[f.file], f.name);
    assert.equal(sd.tensors.size, ldm.size, f.name);
    for (const [k, t] of ldm) {
      const got = sd.tensors.get(k);
      assert.ok(got, `${f.name}: ${k} missing`);
      assert.deepEqual(got.shape, t.shape, `${f.name}: ${k}`);
      assert.deepEqual(Buffer.from(bytesOf(got)), Buffer.from(bytesOf(t)), `${f.name}: ${k} values`);
    }
  }
});

test('architecture inferred from ldm shapes (SD 32 groups) equals the config but for the groups; ldm-key config equals diffusers config', () => {
  const cfg = readVaeConfig(CONFIG);
  for (const f of WEIGHT_FORMS) {
    const inferred = inferVaeConfig(readVaeStateDict(vaeFixture(f.file)), f.file);
    assert.deepEqual(inferred, { ...cfg, normNumGroups: 32 }, f.name);
  }
  const dir = mkdtempSync(join(tmpdir(), 'vae-cfg-'));
  try {
    const ldmCfg = join(dir, 'ldm.json');
    writeFileSync(ldmCfg, JSON.stringify(VAE_JSON.sets.vae_tiny.ldm_config));
    assert.deepEqual(readVaeConfig(ldmCfg), cfg);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a diffusers folder (config.json + diffusion_pytorch_model.safetensors) and a pipeline folder with vae/ load with their config', async () => {
  await useBackend('cpu');
  const dir = mkdtempSync(join(tmpdir(), 'vae-folder-'));
  try {
    copyFileSync(CONFIG, join(dir, 'config.json'));
    copyFileSync(vaeFixture('vae_tiny.diffusers.safetensors'), join(dir, 'diffusion_pytorch_model.safetensors'));
    const a = loadVae(dir);
    assert.equal(a.info.configSource, 'folder config.json');
    assert.equal(a.vae.config.normNumGroups, 8);
    assert.deepEqual({ ...a.vae.paramCount() }, { ...VAE_JSON.sets.vae_tiny.param_counts, tensors: 124 });
    a.vae.dispose();
    const pipe = join(dir, 'pipe');
    mkdirSync(join(pipe, 'vae'), { recursive: true });
    copyFileSync(CONFIG, join(pipe, 'vae', 'config.json'));
    copyFileSync(
      vaeFixture('vae_tiny.diffusers_legacy.safetensors'),
      join(pipe, 'vae', 'diffusion_pytorch_model.safetensors'),
    );
    const b = loadVae(pipe);
    assert.equal(b.info.naming, 'diffusers-legacy');
    b.vae.dispose();
    assert.throws(
      () => loadVae(join(dir, 'nothing-here')),
      (e) => e instanceof UserError && /does not exist/.test(e.message),
    );
    assert.throws(
      () => loadVae(join(pipe, 'vae', '..', '..', '..')),
      (e) => e instanceof UserError && /holds no diffusion_pytorch_model.safetensors/.test(e.message),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('partial, misshapen, foreign and mismatched weights are refused naming the tensor', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vae-bad-'));
  const cfg = readVaeConfig(CONFIG);
  try {
    const base = readSafetensors(vaeFixture('vae_tiny.diffusers.safetensors')).tensors;
    const variant = (name: string, edit: (m: typeof base) => void): string => {
      const m = new Map(base);
      edit(m);
      const p = join(dir, `${name}.safetensors`);
      writeSafetensors(p, m);
      return p;
    };
    const isUser = (re: RegExp) => (e: unknown) => e instanceof UserError && re.test(e.message);
    const missing = variant('missing', (m) => m.delete('decoder.up_blocks.1.resnets.1.conv2.weight'));
    assert.throws(
      () => loadVae(missing, { config: CONFIG }),
      isUser(/missing tensor 'decoder\.up\.0\.block\.1\.conv2\.weight'/),
    );
    const wrong = variant('wrong', (m) => {
      const t = m.get('encoder.mid_block.attentions.0.to_q.weight')!;
      m.set('encoder.mid_block.attentions.0.to_q.weight', { ...t, shape: [32, 128], data: t.data });
    });
    assert.throws(
      () => loadVae(wrong, { config: CONFIG }),
      isUser(
        /'encoder\.mid_block\.attentions\.0\.to_q\.weight' \(ldm 'encoder\.mid\.attn_1\.q\.weight'\) has shape \[32, 128, 1, 1\], expected \[64, 64, 1, 1\]/,
      ),
    );
    const extra = variant('extra', (m) =>
      m.set('decoder.mid_block.attentions.0.something.weight', base.get('decoder.conv_out.bias')!),
    );
    assert.throws(() => loadVae(extra, { config: CONFIG }), isUser(/does not have/));
    // the right weights with a config of another architecture
    const other = join(dir, 'other.json');
    writeFileSync(
      other,
      JSON.stringify({ block_out_channels: [32, 64], layers_per_block: 2, norm_num_groups: 8, latent_channels: 4 }),
    );
    assert.throws(
      () => loadVae(vaeFixture('vae_tiny.ldm.safetensors'), { config: other }),
      isUser(/missing tensor 'encoder\.down\.0\.block\.1\.norm1\.weight'/),
    );
    // not a VAE at all
    const foreign = join(dir, 'foreign.safetensors');
    writeSafetensors(foreign, { 'blocks.0.attn.qkv.weight': base.get('decoder.conv_out.bias')! });
    assert.throws(() => loadVae(foreign), isUser(/no tensor 'encoder\.down\.0\.block\.0\.conv1\.weight'.*--config/));
    // checkVaeStateDict on a good file passes
    checkVaeStateDict(readVaeStateDict(vaeFixture('vae_tiny.sd.safetensors')), cfg, 'sd');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
