// Does mixed precision train like fp32? The same short DiT-S/2 and FPDM-S/2 runs (the bench's random
// latents, batch 32, two seeds) at one precision per process (a process has one webgpu device), then a
// comparison: per seed, the mean loss of the last steps at mixed vs fp32, against the seed-to-seed
// difference at fp32 (the noise a change of precision should stay within).
//   node scripts/gpu/precision-curve.mjs run fp32|mixed STEPS OUT.json
//   node scripts/gpu/precision-curve.mjs compare FP32.json MIXED.json [OUT.md]
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initBackend, parsePrecision } from '../../src/backends/index.js';
import { diffusionConfig } from '../../src/diffusion/process.js';
import { ditPreset, fpdmFrom, modelName, type ModelConfig } from '../../src/models/index.js';
import { trainModel } from '../../src/training/loop.js';
import { latentDataset } from '../../bench/cases.js';

const SEEDS = [1, 2];
/** the mean is taken over this many last steps */
const TAIL = 20;

type Curves = { precision: string; steps: number; runs: Record<string, Record<string, number[]>> };

async function runAll(precision: string, steps: number): Promise<Curves> {
  const info = await initBackend('webgpu', { precision: parsePrecision(precision) });
  const trunk = ditPreset('DiT-S/2');
  const models: ModelConfig[] = [trunk, fpdmFrom(trunk)];
  const runs: Curves['runs'] = {};
  for (const c of models) {
    const name = modelName(c);
    runs[name] = {};
    for (const seed of SEEDS) {
      const dir = mkdtempSync(join(tmpdir(), 'fpdm-precision-'));
      try {
        const r = await trainModel({
          model: c,
          diffusion: diffusionConfig(),
          dataset: latentDataset(c, 256),
          steps,
          batch: 32,
          seed,
          outDir: dir,
          checkpointEvery: 1_000_000,
          optimizer: { lr: 1e-4 },
        });
        runs[name]![String(seed)] = r.history.map((h) => h.loss);
        console.log(`${name} seed ${seed} (${info.precision ?? 'fp32'}): last loss ${r.history.at(-1)!.loss}`);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }
  }
  return { precision: info.precision ?? 'fp32', steps, runs };
}

const tailMean = (xs: number[]) => xs.slice(-TAIL).reduce((a, b) => a + b, 0) / Math.min(TAIL, xs.length);

function compare(fp32: Curves, mixed: Curves): string {
  const lines = [
    `# Mixed vs fp32 training loss (mean of the last ${TAIL} of ${fp32.steps} steps)`,
    '',
    '| model | seed | fp32 | mixed | mixed − fp32 | fp32 seed spread (|seed 1 − seed 2|) | within the spread |',
    '| --- | --- | --- | --- | --- | --- | --- |',
  ];
  for (const [name, bySeed] of Object.entries(fp32.runs)) {
    const spread = Math.abs(tailMean(bySeed['1']!) - tailMean(bySeed['2']!));
    for (const seed of Object.keys(bySeed)) {
      const a = tailMean(bySeed[seed]!);
      const b = tailMean(mixed.runs[name]![seed]!);
      lines.push(
        `| ${name} | ${seed} | ${a.toFixed(5)} | ${b.toFixed(5)} | ${(b - a).toExponential(2)} | ${spread.toExponential(2)} | ${Math.abs(b - a) <= spread ? 'yes' : 'no'} |`,
      );
    }
  }
  return lines.join('\n') + '\n';
}

const [mode, a, b, c] = process.argv.slice(2);
if (mode === 'run') {
  const curves = await runAll(a!, Number(b));
  writeFileSync(c!, JSON.stringify(curves) + '\n');
} else if (mode === 'compare') {
  const md = compare(JSON.parse(readFileSync(a!, 'utf8')), JSON.parse(readFileSync(b!, 'utf8')));
  process.stdout.write(md);
  if (c) writeFileSync(c, md);
} else {
  console.error('usage: precision-curve run fp32|mixed STEPS OUT.json | compare FP32.json MIXED.json [OUT.md]');
  process.exit(2);
}
process.exit(0);
