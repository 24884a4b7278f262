// `fpdm-exp data info <data>`: size, classes and fingerprint of a dataset;
// `fpdm-exp data grid <data> --out grid.png`: a grid of its first (or seeded random) images.
// <data> is `mnist`, `mnist:<split>`, `synthetic`, `folder:<path>` or a folder path.
import type { Command } from 'commander';
import { describeDataset, openDataset, parseDataArg, writeGrid, type DatasetSpec } from '../../data/index.js';
import { UserError } from '../../util/errors.js';
import { emitJson, log } from '../../util/log.js';
import { Rng } from '../../util/rng.js';
import { formatTable } from '../table.js';
import { prepareFileTarget } from '../../util/fs.js';

export interface DataOptions {
  data: string;
  imageSize?: number;
  channels?: 1 | 3;
}

function spec(o: DataOptions): DatasetSpec {
  return parseDataArg(o.data, { imageSize: o.imageSize, channels: o.channels });
}

export interface DataInfo extends ReturnType<typeof describeDataset> {
  classNames: string[];
  /** images per class, in label order */
  classCounts: number[];
}

export async function runInfo(o: DataOptions): Promise<DataInfo> {
  const ds = await openDataset(spec(o));
  const counts = new Array<number>(ds.numClasses).fill(0);
  const step = 1024;
  for (let s = 0; s < ds.size; s += step) {
    const b = await ds.batch(Int32Array.from({ length: Math.min(step, ds.size - s) }, (_, i) => s + i));
    for (const y of b.y) counts[y]! += 1;
  }
  return { ...describeDataset(ds), classNames: [...ds.classNames], classCounts: counts };
}

export interface GridRunOptions extends DataOptions {
  out: string;
  n: number;
  nrow: number;
  /** pick images by a seeded permutation instead of the first n */
  seed?: number;
}

export async function runGrid(o: GridRunOptions): Promise<{ out: string; indices: number[] }> {
  prepareFileTarget(o.out, '--out file', { createDir: false });
  const ds = await openDataset(spec(o));
  if (!Number.isInteger(o.n) || o.n < 1) throw new UserError(`--n must be a positive integer (got ${o.n})`);
  const n = Math.min(o.n, ds.size);
  const idx =
    o.seed === undefined
      ? Int32Array.from({ length: n }, (_, i) => i)
      : new Rng(o.seed).permutation(ds.size).slice(0, n);
  const b = await ds.batch(idx);
  await writeGrid(o.out, b.x, b.shape, { nrow: o.nrow });
  return { out: o.out, indices: Array.from(idx) };
}

function int(name: string): (v: string) => number {
  return (v) => {
    const x = Number(v);
    if (!Number.isInteger(x)) throw new UserError(`${name}: '${v}' is not an integer`);
    return x;
  };
}

function channels(v: string): 1 | 3 {
  if (v === '1' || v === '3') return Number(v) as 1 | 3;
  throw new UserError(`--channels: '${v}' must be 1 or 3`);
}

export function register(program: Command): void {
  const data = program
    .command('data')
    .description('inspect datasets: mnist, mnist:<train|heldout|all>, synthetic, or an image folder');
  data
    .command('info <data>')
    .description('size, classes (with counts) and fingerprint of a dataset')
    .option('--image-size <n>', 'image side after preprocessing', int('--image-size'), 32)
    .option('--channels <c>', '1 or 3 (default: 1 for mnist, 3 otherwise)', channels)
    .option('--json', 'print JSON on stdout')
    .action(async (d: string, opts: { imageSize: number; channels?: 1 | 3; json?: boolean }) => {
      const info = await runInfo({ data: d, imageSize: opts.imageSize, channels: opts.channels });
      if (opts.json) return emitJson(info);
      process.stdout.write(
        formatTable(
          ['field', 'value'],
          [
            ['kind', info.kind],
            ['name', info.name],
            ['images', String(info.size)],
            ['classes', info.labeled ? String(info.numClasses) : 'unlabeled'],
            ['image', `${info.channels}×${info.imageSize}×${info.imageSize}`],
            ['fingerprint', info.fingerprint],
          ],
        ),
      );
      if (info.labeled) {
        process.stdout.write(
          formatTable(
            ['label', 'class', 'images'],
            info.classNames.map((c, i) => [String(i), c, String(info.classCounts[i])]),
          ),
        );
      }
    });
  data
    .command('grid <data>')
    .description('write a PNG grid of dataset images (2-px border)')
    .requiredOption('--out <file>', 'output PNG')
    .option('--n <n>', 'number of images', int('--n'), 64)
    .option('--nrow <n>', 'images per row', int('--nrow'), 8)
    .option('--seed <s>', 'pick a seeded random subset instead of the first n', int('--seed'))
    .option('--image-size <n>', 'image side after preprocessing', int('--image-size'), 32)
    .option('--channels <c>', '1 or 3', channels)
    .action(
      async (
        d: string,
        opts: { out: string; n: number; nrow: number; seed?: number; imageSize: number; channels?: 1 | 3 },
      ) => {
        const r = await runGrid({ data: d, ...opts });
        log(`wrote ${r.out} (${r.indices.length} images)`);
      },
    );
}
