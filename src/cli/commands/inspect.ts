// `fpdm-exp inspect FILE [--json]`: the tensors of any weights/checkpoint/array file.
import type { Command } from 'commander';
import { readAny, type WeightsFormat } from '../../io/index.js';
import { numel } from '../../util/shapes.js';
import { emitJson } from '../../util/log.js';
import { formatTable } from '../table.js';

export interface InspectResult {
  file: string;
  format: WeightsFormat;
  tensors: { name: string; dtype: string; shape: number[]; elements: number }[];
  count: number;
  totalElements: number;
  /** elements per dtype, e.g. { F32: 23885392, I64: 94 } */
  elementsByDtype: Record<string, number>;
  /** top-level state_dicts of a training checkpoint (model, ema, …) */
  entries: string[];
  extras: Record<string, unknown>;
}

export function run(opts: { file: string }): InspectResult {
  const r = readAny(opts.file);
  const tensors = [...r.tensors].map(([name, t]) => ({
    name,
    dtype: t.dtype,
    shape: t.shape,
    elements: numel(t.shape),
  }));
  const elementsByDtype: Record<string, number> = {};
  for (const t of tensors) elementsByDtype[t.dtype] = (elementsByDtype[t.dtype] ?? 0) + t.elements;
  return {
    file: opts.file,
    format: r.format,
    tensors,
    count: tensors.length,
    totalElements: tensors.reduce((s, t) => s + t.elements, 0),
    elementsByDtype,
    entries: r.entries,
    extras: r.extras,
  };
}

export function register(program: Command): void {
  program
    .command('inspect')
    .description(
      'list the tensors (name, dtype, shape) of a .safetensors, PyTorch .pt/.pth (zip or legacy), .npy or .npz file',
    )
    .argument('<file>', 'weights, checkpoint or array file')
    .option('--json', 'print JSON on stdout')
    .action((file: string, opts: { json?: boolean }) => {
      const r = run({ file });
      if (opts.json) return emitJson(r);
      process.stdout.write(
        formatTable(
          ['name', 'dtype', 'shape'],
          r.tensors.map((t) => [t.name, t.dtype, `[${t.shape.join(', ')}]`]),
        ),
      );
      const byType = Object.entries(r.elementsByDtype)
        .map(([d, n]) => `${n.toLocaleString('en-US')} ${d}`)
        .join(', ');
      process.stdout.write(
        `\n${r.file}: ${r.format}, ${r.count} tensors, ${r.totalElements.toLocaleString('en-US')} elements (${byType})\n`,
      );
      if (r.entries.length) process.stdout.write(`state_dicts: ${r.entries.join(', ')}\n`);
      if (Object.keys(r.extras).length) process.stdout.write(`other entries: ${JSON.stringify(r.extras)}\n`);
    });
}
