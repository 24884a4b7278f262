// `node --import tsx bench/vae.ts [--backend webgpu|wasm|cpu] [--batch 4] [--latent 32] [--iters 3] [--warmup 2] [--tiny]
//                                 [--no-torch | --torch-json FILE] [--torch-precision fp32,fp16] [--out FILE]`
// (also `npm run bench -- --vae …` with the same options)
//
// SD-VAE decode throughput: the real kl-f8 architecture (83,653,863 parameters, random weights of a
// trained network's scale: GroupNorm keeps activations normalised) decoding [B, 4, h, h] latents to
// [B, 3, 8h, 8h] images (256×256 at the default h = 32), decode + the uint8 quantisation of sample.py,
// timed after warm-up passes (median of the timed passes). `--tiny` uses a small configuration (ch 32,
// ch_mult [1, 2], 1 res block, 8 groups) so CPU machines finish in seconds.
// Compute by formula: ≈ 311 GMAC per 256² image for the SD decoder (convolutions only).
//
// The PyTorch side (bench/vae_torch.py, the same decoder in plain PyTorch, float32 with TF32 off and an
// autocast float16 row) runs first as a child process on the same GPU, as bench/torch_ref.py does for
// `npm run bench`; it is skipped with the reason printed when python3, torch or a CUDA device is missing.
// The script is $FPDM_BENCH_VAE_TORCH or bench/vae_torch.py under the working directory; the
// interpreter $FPDM_BENCH_PYTHON or python3. Prints one JSON object (ours, PyTorch, ratios) on stdout
// and a short table on stderr; `--out FILE` also writes the JSON there.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { activeBackend, initBackend, parseBackendChoice, type BackendChoice } from '../src/backends/index.js';
import { AutoencoderKL, quantizeToUint8 } from '../src/vae/autoencoder.js';
import { downFactor, SD_VAE_CONFIG, type VaeConfig } from '../src/vae/config.js';
import type { VaeWeights } from '../src/vae/layers.js';
import { countVaeParams, vaeParamSpecs } from '../src/vae/params.js';
import { UserError } from '../src/util/errors.js';

export interface VaeBenchOptions {
  backend: BackendChoice;
  batch: number;
  latent: number;
  iters: number;
  warmup: number;
  tiny: boolean;
  torch: 'run' | 'skip' | { json: string };
  torchPrecision: Array<'fp32' | 'fp16'>;
  out: string | null;
}

/** One row of bench/vae_torch.py. */
export interface VaeTorchRow {
  key: 'fp32' | 'fp16';
  precision: string;
  batch: number;
  image: string;
  seconds: number[];
  medianSeconds: number;
  msPerBatch: number;
  imagesPerSecond: number;
  peakBytes: number;
}

/** The JSON line bench/vae_torch.py prints (available = false with the reason when not measured). */
export interface VaeTorchResult {
  available: boolean;
  reason?: string;
  torch?: string;
  cuda?: string;
  device?: string;
  tf32?: { matmul: boolean; cudnn: boolean };
  cudnnBenchmark?: boolean;
  config?: string;
  params?: { decoder: number; postQuantConv: number; expectedDecoder: number | null; ok: boolean | null };
  rows?: VaeTorchRow[];
  errors?: string[];
}

export interface VaeOurs {
  backend: string;
  device: string | null;
  batch: number;
  image: string;
  warmup: number;
  secondsPerBatch: number[];
  medianSeconds: number;
  msPerBatch: number;
  imagesPerSecond: number;
}

const PRECISIONS = ['fp32', 'fp16'] as const;

function posInt(v: string, flag: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new UserError(`${flag}: '${v}' is not a positive integer`);
  return n;
}

/** Parses the command line (argv without node and the script; `--vae` of `npm run bench` is ignored). */
export function parseVaeArgs(argv: string[]): VaeBenchOptions {
  const o: VaeBenchOptions = {
    backend: 'auto',
    batch: 4,
    latent: 32,
    iters: 3,
    warmup: 2,
    tiny: false,
    torch: 'run',
    torchPrecision: ['fp32', 'fp16'],
    out: null,
  };
  const value = (i: number, flag: string): string => {
    const v = argv[i + 1];
    if (v === undefined || v.startsWith('--')) throw new UserError(`${flag} needs a value`);
    return v;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    switch (a) {
      case '--vae':
        break;
      case '--backend':
        o.backend = parseBackendChoice(value(i++, a));
        break;
      case '--batch':
        o.batch = posInt(value(i++, a), a);
        break;
      case '--latent':
        o.latent = posInt(value(i++, a), a);
        break;
      case '--iters':
        o.iters = posInt(value(i++, a), a);
        break;
      case '--warmup':
        o.warmup = posInt(value(i++, a), a);
        break;
      case '--tiny':
        o.tiny = true;
        break;
      case '--torch':
        o.torch = 'run';
        break;
      case '--no-torch':
        o.torch = 'skip';
        break;
      case '--torch-json': {
        const p = value(i++, a);
        if (!existsSync(p)) throw new UserError(`--torch-json: '${p}' does not exist`);
        o.torch = { json: p };
        break;
      }
      case '--torch-precision': {
        const list = value(i++, a)
          .split(',')
          .filter((s) => s.length > 0);
        const bad = list.filter((s) => !(PRECISIONS as readonly string[]).includes(s));
        if (bad.length || list.length === 0)
          throw new UserError(
            `--torch-precision: '${bad.join(',') || '(empty)'}' is not fp32 or fp16 (comma-separated)`,
          );
        o.torchPrecision = list as Array<'fp32' | 'fp16'>;
        break;
      }
      case '--out':
        o.out = value(i++, a);
        break;
      case '--help':
      case '-h':
        throw new UserError(
          'usage: npm run bench -- --vae [--backend webgpu|wasm|cpu|auto] [--batch 4] [--latent 32] [--iters 3] [--warmup 2] [--tiny] [--no-torch | --torch-json FILE] [--torch-precision fp32,fp16] [--out FILE]',
        );
      default:
        throw new UserError(`unknown option '${a}' for the VAE bench; see --help`);
    }
  }
  return o;
}

/** The last JSON line of the PyTorch side's stdout; never throws. */
export function vaeTorchFromStdout(stdout: string, what: string): VaeTorchResult {
  const lines = stdout
    .trim()
    .split('\n')
    .filter((l) => l.startsWith('{'));
  if (lines.length === 0) return { available: false, reason: `${what} printed no JSON` };
  try {
    return JSON.parse(lines[lines.length - 1]!) as VaeTorchResult;
  } catch (e) {
    return { available: false, reason: `${what} printed malformed JSON (${(e as Error).message})` };
  }
}

/** Runs bench/vae_torch.py; a missing interpreter/script/torch/CUDA comes back as available = false with the reason. */
export function runVaeTorch(o: VaeBenchOptions, expectDecoderParams: number, timeoutSeconds = 900): VaeTorchResult {
  const script = process.env.FPDM_BENCH_VAE_TORCH ?? resolve(process.cwd(), 'bench', 'vae_torch.py');
  if (!existsSync(script))
    return {
      available: false,
      reason: `${script} not found (set FPDM_BENCH_VAE_TORCH or run from the repository root)`,
    };
  const python = process.env.FPDM_BENCH_PYTHON ?? 'python3';
  const args = [
    script,
    '--batch',
    String(o.batch),
    '--latent',
    String(o.latent),
    '--iters',
    String(o.iters),
    '--warmup',
    String(o.warmup),
    '--precision',
    o.torchPrecision.join(','),
    '--expect-decoder-params',
    String(expectDecoderParams),
    ...(o.tiny ? ['--tiny'] : []),
  ];
  const r = spawnSync(python, args, {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    maxBuffer: 16 << 20,
    timeout: timeoutSeconds * 1000,
  });
  if (r.error) return { available: false, reason: `${python} could not be run (${r.error.message})` };
  return vaeTorchFromStdout(r.stdout ?? '', `${python} ${script} (exit status ${r.status})`);
}

/** ours ÷ PyTorch images/s per PyTorch row (fp32 is the like-for-like one: ours is float32). */
export function vaeRatios(ours: VaeOurs, torch: VaeTorchResult): Record<string, number> {
  const r: Record<string, number> = {};
  for (const row of torch.available ? (torch.rows ?? []) : []) r[row.key] = ours.imagesPerSecond / row.imagesPerSecond;
  return r;
}

/** Random weights: convs N(0, 1/fan_in) in TF layout [kh, kw, in, out], norms γ = 1, β = 0, biases 0. */
function randomVae(c: VaeConfig): AutoencoderKL {
  const ws: VaeWeights = new Map();
  for (const s of vaeParamSpecs(c)) {
    if (s.shape.length === 4) {
      const [o, i, kh, kw] = s.shape as [number, number, number, number];
      ws.set(s.name, tf.randomNormal([kh, kw, i, o], 0, 1 / Math.sqrt(i * kh * kw), 'float32', 1));
    } else {
      ws.set(
        s.name,
        /\.norm[^.]*\.weight$|norm_out\.weight$|\.norm\.weight$/.test(s.name) ? tf.ones(s.shape) : tf.zeros(s.shape),
      );
    }
  }
  return new AutoencoderKL(c, ws);
}

export const TINY_VAE_CONFIG: VaeConfig = {
  ...SD_VAE_CONFIG,
  blockOutChannels: [32, 64],
  layersPerBlock: 1,
  normNumGroups: 8,
};

async function measureOurs(o: VaeBenchOptions, config: VaeConfig): Promise<VaeOurs> {
  const backend = await initBackend(o.backend);
  const vae = randomVae(config);
  const z = tf.randomNormal([o.batch, config.embedDim, o.latent, o.latent], 0, 1, 'float32', 2) as tf.Tensor4D;
  const pass = async (): Promise<number> => {
    const t0 = performance.now();
    const u8 = tf.tidy(() => quantizeToUint8(vae.decodeLatents(z)));
    await u8.data();
    u8.dispose();
    return (performance.now() - t0) / 1000;
  };
  for (let i = 0; i < o.warmup; i++) await pass(); // kernel compilation, weight upload
  const times: number[] = [];
  for (let i = 0; i < o.iters; i++) times.push(await pass());
  const median = [...times].sort((a, b) => a - b)[Math.floor(times.length / 2)]!;
  const side = o.latent * downFactor(config);
  vae.dispose();
  z.dispose();
  return {
    backend: backend.name,
    device: activeBackend().device ?? null,
    batch: o.batch,
    image: `${side}x${side}`,
    warmup: o.warmup,
    secondsPerBatch: times,
    medianSeconds: median,
    msPerBatch: median * 1000,
    imagesPerSecond: o.batch / median,
  };
}

/** Both sides (PyTorch first, as `npm run bench` does), ratios; returns the JSON document. */
export async function runVaeBench(o: VaeBenchOptions): Promise<Record<string, unknown>> {
  const config = o.tiny ? TINY_VAE_CONFIG : SD_VAE_CONFIG;
  const counts = countVaeParams(config);
  let torch: VaeTorchResult;
  if (o.torch === 'skip') torch = { available: false, reason: '--no-torch' };
  else if (o.torch === 'run') {
    process.stderr.write('vae bench: running the PyTorch side (bench/vae_torch.py)\n');
    torch = runVaeTorch(o, counts.decoder);
  } else {
    const text = readFileSync(o.torch.json, 'utf8');
    let r: VaeTorchResult;
    try {
      r = JSON.parse(text) as VaeTorchResult; // one object (also pretty-printed)
    } catch {
      r = vaeTorchFromStdout(text, `--torch-json ${o.torch.json}`); // a captured stdout: its last JSON line
      if (!r.available && /JSON/.test(r.reason ?? ''))
        throw new UserError(
          `--torch-json ${o.torch.json}: not a JSON object (${r.reason}); give the JSON line bench/vae_torch.py printed`,
        );
    }
    torch = r;
  }
  if (!torch.available) process.stderr.write(`vae bench: PyTorch side skipped: ${torch.reason ?? 'no reason given'}\n`);
  const ours = await measureOurs(o, config);
  const ratios = vaeRatios(ours, torch);
  const torchDecoder = torch.params?.decoder ?? null;
  const doc = {
    what: 'vae decode + uint8 quantisation',
    config: o.tiny ? 'tiny (ch 32, [1,2], 1 res block)' : 'SD VAE kl-f8',
    params: countVaeParams(config).total,
    decoderParams: counts.decoder,
    torchDecoderParams: torchDecoder,
    paramsMatch: torchDecoder === null ? null : torchDecoder === counts.decoder,
    // kept at the top level as before: ours
    backend: ours.backend,
    device: ours.device,
    batch: o.batch,
    image: ours.image,
    secondsPerBatch: ours.secondsPerBatch,
    imagesPerSecond: ours.imagesPerSecond,
    ours,
    torch,
    ratioOursOverTorch: ratios,
  };
  const fmt = (x: number): string => x.toPrecision(4);
  const lines = [
    `| VAE decode ${ours.image}, batch ${o.batch} | images/s | ms/batch | ours ÷ this |`,
    '| --- | --- | --- | --- |',
    `| ours (TF.js ${ours.backend}, float32) | ${fmt(ours.imagesPerSecond)} | ${fmt(ours.msPerBatch)} | |`,
    ...(torch.available ? (torch.rows ?? []) : []).map(
      (r) =>
        `| PyTorch ${torch.torch ?? ''} ${r.precision} | ${fmt(r.imagesPerSecond)} | ${fmt(r.msPerBatch)} | ${fmt(ratios[r.key]!)}× |`,
    ),
  ];
  for (const e of torch.errors ?? []) lines.push(`PyTorch error: ${e}`);
  if (doc.paramsMatch === false)
    lines.push(`PARAMETER COUNT MISMATCH: decoder ours ${counts.decoder}, PyTorch ${torchDecoder}`);
  process.stderr.write(lines.join('\n') + '\n');
  if (o.out) {
    mkdirSync(dirname(o.out), { recursive: true });
    writeFileSync(o.out, JSON.stringify(doc, null, 2) + '\n');
  }
  return doc;
}

/** Entry point of `bench/vae.ts` and of `npm run bench -- --vae`: exit 2 on bad options. */
export async function vaeBenchMain(argv: string[]): Promise<void> {
  try {
    const doc = await runVaeBench(parseVaeArgs(argv));
    process.stdout.write(JSON.stringify(doc, null, 2) + '\n');
  } catch (e) {
    if (e instanceof UserError) {
      process.stderr.write(`error: ${e.message}\n`);
      process.exit(2);
    }
    process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
    process.exit(1);
  }
  process.exit(0); // the webgpu device and wasm worker handles can keep the event loop alive
}

// runs when executed (from source or bundled), not when imported
const entry = process.argv[1] ?? '';
if (/bench[\\/]vae\.(ts|mjs|js)$/.test(entry)) void vaeBenchMain(process.argv.slice(2));
