// `node --import tsx bench/inception.ts [--backends wasm,cpu,webgpu,tensorflow] [--batch 8] [--repeats 2] [--weights FILE] [--json]`
// Images/s of the FID Inception network (preprocess from uint8 32×32 + forward to pool3, host read-back
// included) on each usable backend; warm-up excluded (one untimed call per backend). Weights:
// --weights, else $FPDM_INCEPTION_WEIGHTS, else the cached real file, else the ternary fixture (same
// architecture and cost). The pure-JS cpu backend is measured at batch 1 with one timed call.
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend, probeBackends, type BackendName } from '../src/backends/index.js';
import { FidInception } from '../src/metrics/inception.js';
import { preprocess } from '../src/metrics/preprocess.js';
import { timeIt, type TimingResult } from '../src/metrics/timing.js';
import { cachedWeightsPath } from '../src/metrics/weights.js';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

function weightsPath(): string {
  const candidates = [
    arg('weights'),
    process.env.FPDM_INCEPTION_WEIGHTS,
    cachedWeightsPath(),
    join(process.env.FPDM_FIXTURES ?? resolve('tests', 'fixtures'), 'inception_fid_ternary.legacy.pt'),
  ];
  const p = candidates.find((c) => c && existsSync(c));
  if (!p) throw new Error('no Inception weights found: pass --weights FILE or set FPDM_INCEPTION_WEIGHTS');
  return p;
}

interface Row {
  backend: BackendName;
  version?: string;
  device?: string;
  batch: number;
  imagesPerSecond: number;
  secondsPerBatch: number;
  timing: TimingResult;
}

async function main(): Promise<void> {
  const wanted = (arg('backends') ?? 'wasm,cpu,webgpu,tensorflow').split(',') as BackendName[];
  const batch = Number(arg('batch') ?? 8);
  const repeats = Number(arg('repeats') ?? 2);
  const path = weightsPath();
  const infos = await probeBackends();
  const rows: Row[] = [];
  for (const name of wanted) {
    const info = infos.find((b) => b.name === name);
    if (!info?.usable) {
      process.stderr.write(`${name}: not usable here (${info?.reason ?? 'unknown backend'})\n`);
      continue;
    }
    await initBackend(name);
    const b = name === 'cpu' ? 1 : batch;
    const r = name === 'cpu' ? 1 : repeats;
    const net = FidInception.load(path);
    const u8 = tf.tensor4d(
      Uint8Array.from({ length: b * 3 * 32 * 32 }, (_, i) => (i * 2654435761) >>> 24),
      [b, 3, 32, 32],
      'int32',
    );
    try {
      process.stderr.write(`${name}: batch ${b}, 1 warm-up + ${r} timed call(s)…\n`);
      const timing = await timeIt(
        async () => {
          const out = tf.tidy(() => net.forward(preprocess(u8, 'pytorch-fid')).pool3);
          await out.data();
          out.dispose();
        },
        { warmup: 1, repeats: r, itemsPerCall: b },
      );
      rows.push({
        backend: name,
        version: info.version,
        device: info.device,
        batch: b,
        imagesPerSecond: timing.itemsPerSecond,
        secondsPerBatch: timing.medianSeconds,
        timing,
      });
    } finally {
      u8.dispose();
      net.dispose();
    }
  }
  if (process.argv.includes('--json')) {
    process.stdout.write(JSON.stringify({ weights: path, rows }, null, 2) + '\n');
    return;
  }
  process.stdout.write(
    `FID Inception (pytorch-fid preprocessing from 32×32 uint8, pool3 read back); weights ${path}\n`,
  );
  process.stdout.write(
    '| backend | version | device | batch | s/batch (median) | images/s |\n| --- | --- | --- | --- | --- | --- |\n',
  );
  for (const r of rows)
    process.stdout.write(
      `| ${r.backend} | ${r.version ?? '-'} | ${r.device ?? '-'} | ${r.batch} | ${r.secondsPerBatch.toFixed(3)} | ${r.imagesPerSecond.toFixed(3)} |\n`,
    );
}

await main();
