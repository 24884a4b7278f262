// Report figures: Vega-Lite specs (data inline), compiled with vega-lite, rendered headless with
// vega's View.toSVG() (renderer 'none': no canvas needed), rasterised to PNG with sharp. Beside each
// figure we save its spec (<id>.vl.json, data included) and its data (<id>.data.csv).
import * as vl from 'vega-lite';
import * as vega from 'vega';
import sharp from 'sharp';
import { join } from 'node:path';
import { stringify } from 'csv-stringify/sync';
import { atomicWrite } from '../util/fs.js';

/** One plotted value: the mean over seeds and its band (mean ± std; lo = hi = mean for one seed). */
export interface SeriesPoint {
  series: string;
  x: number | string;
  mean: number;
  lo: number;
  hi: number;
  n: number;
  /** text drawn above a bar (e.g. "−59%") */
  label?: string;
}

export interface ChartOptions {
  id: string;
  title: string;
  xTitle: string;
  yTitle: string;
  seriesTitle: string;
  points: SeriesPoint[];
}

export type VlSpec = Record<string, unknown>;

const SIZE = { width: 480, height: 280 };
/** legends below the plot, one entry per line, never truncated (model labels can be long) */
const LEGEND = { orient: 'bottom', direction: 'vertical', labelLimit: 2000 };
/** PNG pixels per SVG pixel (sharp renders the SVG at 72·PNG_SCALE dpi). */
export const PNG_SCALE = 2;

const hasBands = (pts: SeriesPoint[]) => pts.some((p) => p.n > 1 && p.hi > p.lo);

/** Lines with points, one per series, and mean ± std bands where seeds repeat. */
export function lineChart(o: ChartOptions & { xType?: 'quantitative' | 'ordinal'; xLog?: boolean; yLog?: boolean; xInteger?: boolean }): VlSpec {
  const xType = o.xType ?? 'quantitative';
  const x = { field: 'x', type: xType, title: o.xTitle, ...(o.xLog ? { scale: { type: 'log' } } : {}), ...(xType === 'ordinal' ? { sort: null } : {}), ...(o.xInteger ? { axis: { format: 'd', tickMinStep: 1 } } : {}) };
  const y = { field: 'mean', type: 'quantitative', title: o.yTitle, scale: o.yLog ? { type: 'log' } : { zero: false } };
  const color = { field: 'series', type: 'nominal', title: o.seriesTitle, legend: LEGEND };
  const layer: unknown[] = [];
  if (hasBands(o.points) && !o.yLog)
    layer.push({ mark: { type: 'errorband', opacity: 0.25 }, encoding: { x, y: { field: 'lo', type: 'quantitative', title: o.yTitle }, y2: { field: 'hi' }, color } });
  layer.push({
    mark: { type: 'line', point: o.points.length <= 200 },
    encoding: { x, y, color, tooltip: [{ field: 'series' }, { field: 'x' }, { field: 'mean', format: '.4g' }, { field: 'n' }] },
  });
  return { $schema: 'https://vega.github.io/schema/vega-lite/v5.json', title: o.title, ...SIZE, data: { values: o.points }, layer };
}

/** Grouped bars (x category, one bar per series), error bars where seeds repeat, optional labels. */
export function barChart(o: ChartOptions & { yLog?: boolean }): VlSpec {
  const x = { field: 'x', type: 'nominal', title: o.xTitle, sort: null, axis: { labelAngle: o.points.some((p) => String(p.x).length > 12) ? -25 : 0, labelLimit: 200 } };
  const xOffset = { field: 'series', type: 'nominal', sort: null };
  const color = { field: 'series', type: 'nominal', title: o.seriesTitle, sort: null, legend: LEGEND };
  const y = { field: 'mean', type: 'quantitative', title: o.yTitle, ...(o.yLog ? { scale: { type: 'log' } } : {}) };
  const layer: unknown[] = [{ mark: 'bar', encoding: { x, xOffset, y, color, tooltip: [{ field: 'series' }, { field: 'x' }, { field: 'mean', format: '.4g' }, { field: 'n' }] } }];
  if (hasBands(o.points)) layer.push({ mark: { type: 'rule', color: 'black' }, encoding: { x, xOffset, y: { field: 'lo', type: 'quantitative' }, y2: { field: 'hi' } } });
  const labelled = o.points.some((p) => p.label);
  if (labelled) layer.push({ mark: { type: 'text', dy: -6, fontSize: 10 }, encoding: { x, xOffset, y, text: { field: 'label' } } });
  const values = labelled ? o.points.map((p) => ({ ...p, label: p.label ?? '' })) : o.points;
  return { $schema: 'https://vega.github.io/schema/vega-lite/v5.json', title: o.title, ...SIZE, data: { values }, layer };
}

export interface FigureFiles {
  id: string;
  title: string;
  svg: string;
  png: string;
  spec: string;
  data: string;
  /** SVG size in pixels; the PNG is PNG_SCALE times this */
  width: number;
  height: number;
  /** the SVG text (for inlining into the HTML page) */
  svgText: string;
}

/** Renders `spec` into `<dir>/<id>.svg|.png` and saves `<id>.vl.json` and `<id>.data.csv`; paths returned are relative to `dir`'s parent. */
export async function renderFigure(spec: VlSpec, dir: string, sub: string, id: string, title: string): Promise<FigureFiles> {
  const compiled = vl.compile(spec as unknown as vl.TopLevelSpec).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  let svgText: string;
  try {
    svgText = await view.toSVG();
  } finally {
    view.finalize();
  }
  const m = /<svg[^>]*\swidth="([\d.]+)"[^>]*\sheight="([\d.]+)"/.exec(svgText);
  if (!m) throw new Error(`figure ${id}: vega produced an SVG without width/height`);
  const png = await sharp(Buffer.from(svgText), { density: 72 * PNG_SCALE }).png().toBuffer();
  const values = ((spec.data as { values?: Record<string, unknown>[] } | undefined)?.values ?? []);
  const cols = [...new Set(values.flatMap((v) => Object.keys(v)))];
  const files = { svg: `${sub}/${id}.svg`, png: `${sub}/${id}.png`, spec: `${sub}/${id}.vl.json`, data: `${sub}/${id}.data.csv` };
  atomicWrite(join(dir, files.svg), [svgText]);
  atomicWrite(join(dir, files.png), [png]);
  atomicWrite(join(dir, files.spec), [JSON.stringify(spec, null, 2) + '\n']);
  atomicWrite(join(dir, files.data), [stringify([cols, ...values.map((v) => cols.map((c) => (v[c] ?? '') as string | number))])]);
  return { id, title, ...files, width: Number(m[1]), height: Number(m[2]), svgText };
}
