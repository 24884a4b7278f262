// The VAE decode bench's two-sided plumbing (bench/vae.ts ↔ bench/vae_torch.py), without a GPU: option
// parsing, reading the PyTorch side's JSON line, ratios, and the real script run through python3 here
// (skipped with its reason when torch is absent; its decoder parameter count checked when torch is present).
import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { parseVaeArgs, runVaeTorch, vaeRatios, vaeTorchFromStdout, type VaeOurs } from '../../bench/vae.js';
import { UserError } from '../../src/util/errors.js';

test('options: defaults, --vae of `npm run bench` ignored, bad values are user errors', () => {
  const o = parseVaeArgs(['--vae', '--backend', 'wasm', '--tiny', '--torch-precision', 'fp32']);
  assert.equal(o.backend, 'wasm');
  assert.equal(o.tiny, true);
  assert.deepEqual(o.torchPrecision, ['fp32']);
  assert.equal(o.torch, 'run');
  assert.equal(parseVaeArgs(['--no-torch']).torch, 'skip');
  assert.throws(
    () => parseVaeArgs(['--batch', '0']),
    (e: unknown) => e instanceof UserError && /--batch/.test(e.message),
  );
  assert.throws(
    () => parseVaeArgs(['--torch-precision', 'bf16']),
    (e: unknown) => e instanceof UserError && /bf16/.test(e.message),
  );
  assert.throws(() => parseVaeArgs(['--frobnicate']), UserError);
});

test('the PyTorch side: last JSON line wins; no JSON or malformed JSON is a skip with the reason', () => {
  const r = vaeTorchFromStdout('{"available": false}\nnoise\n{"available": true, "rows": []}\n', 'x');
  assert.equal(r.available, true);
  const none = vaeTorchFromStdout('Traceback …\n', 'python3 s.py');
  assert.equal(none.available, false);
  assert.match(none.reason!, /python3 s\.py printed no JSON/);
  assert.match(vaeTorchFromStdout('{"available": tru', 'x').reason!, /malformed JSON/);
});

test('ratios are ours ÷ PyTorch images/s per precision row; none when the side is unavailable', () => {
  const ours = { imagesPerSecond: 6 } as VaeOurs;
  const row = (key: 'fp32' | 'fp16', ips: number) => ({
    key,
    precision: key,
    batch: 4,
    image: '256x256',
    seconds: [],
    medianSeconds: 4 / ips,
    msPerBatch: 4000 / ips,
    imagesPerSecond: ips,
    peakBytes: 0,
  });
  assert.deepEqual(vaeRatios(ours, { available: true, rows: [row('fp32', 12), row('fp16', 24)] }), {
    fp32: 0.5,
    fp16: 0.25,
  });
  assert.deepEqual(vaeRatios(ours, { available: false, reason: 'x', rows: [row('fp32', 12)] }), {});
});

test('bench/vae_torch.py through python3: a reason when not measured; the real decoder has 49,490,179 parameters when torch is present', () => {
  const r = runVaeTorch(
    { ...parseVaeArgs([]), batch: 1, iters: 1, warmup: 1, torchPrecision: ['fp32'] },
    49490179,
    600,
  );
  if (!r.available) assert.ok(r.reason && r.reason.length > 0, 'an unavailable PyTorch side says why');
  if (r.params) {
    assert.equal(r.params.decoder, 49490179);
    assert.equal(r.params.ok, true);
  }
  if (r.available) assert.ok(r.rows!.length === 1 && r.rows![0]!.imagesPerSecond > 0);
});
