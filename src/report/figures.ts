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
  /** the small-multiple panel this point is drawn in (absent: one panel) */
  panel?: string;
  /** line style group (drawn dashed vs solid, with its own legend), e.g. 'FPDM' / 'DiT at the same budget' */
  style?: string;
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

/**
 * At most this many series (colours) in one panel: beyond it a reader cannot tell the lines apart,
 * so sections facet (one panel per budget, model, …) or summarise instead of drawing a longer legend.
 */
export const MAX_SERIES = 8;

const SIZE = { width: 480, height: 280 };
const PANEL = { width: 300, height: 190 };
/** legends below the plot, one entry per line, never truncated */
const LEGEND = { orient: 'bottom', direction: 'vertical', labelLimit: 600, titleLimit: 600 };
/** PNG pixels per SVG pixel (sharp renders the SVG at 72·PNG_SCALE dpi). */
export const PNG_SCALE = 2;
const SCHEMA = 'https://vega.github.io/schema/vega-lite/v5.json';

const hasBands = (pts: SeriesPoint[]) => pts.some((p) => p.n > 1 && p.hi > p.lo);

/** The largest number of distinct series in any one panel of `points`. */
/**
 * Fits points to MAX_SERIES per panel: unchanged if they fit, else faceted by the first of `facets`
 * (functions point → panel name) that fits; if none does, each panel keeps its first MAX_SERIES
 * series and the names of the others are returned (the caller says so; the data file has them all).
 */
export function fitSeries(
  points: SeriesPoint[],
  facets: ((p: SeriesPoint) => string)[],
): { points: SeriesPoint[]; dropped: string[] } {
  if (seriesPerPanel(points) <= MAX_SERIES) return { points, dropped: [] };
  let best = points;
  for (const f of facets) {
    best = points.map((p) => ({ ...p, panel: p.panel ? `${p.panel}, ${f(p)}` : f(p) }));
    if (seriesPerPanel(best) <= MAX_SERIES) return { points: best, dropped: [] };
  }
  const kept = new Map<string, string[]>();
  const dropped = new Set<string>();
  const out = best.filter((p) => {
    const list = kept.get(p.panel ?? '') ?? kept.set(p.panel ?? '', []).get(p.panel ?? '')!;
    if (list.includes(p.series)) return true;
    if (list.length < MAX_SERIES) return (list.push(p.series), true);
    dropped.add(p.series);
    return false;
  });
  return { points: out, dropped: [...dropped] };
}

export function seriesPerPanel(points: SeriesPoint[]): number {
  const per = new Map<string, Set<string>>();
  for (const p of points)
    (per.get(p.panel ?? '') ?? per.set(p.panel ?? '', new Set()).get(p.panel ?? '')!).add(p.series);
  return Math.max(0, ...[...per.values()].map((s) => s.size));
}

/**
 * One chart, or one panel per distinct `panel` (in order of first appearance), two per row, each with
 * its own colour legend (a shared legend would list every panel's series at once).
 */
function assemble(
  o: ChartOptions & { panelTitle?: string; sharedLegend?: boolean },
  layer: unknown[],
  values: SeriesPoint[],
  size: { width: number; height: number } = SIZE,
): VlSpec {
  if (seriesPerPanel(values) > MAX_SERIES)
    throw new Error(
      `figure ${o.id}: ${seriesPerPanel(values)} series in one panel (at most ${MAX_SERIES}); facet or summarise`,
    );
  const panels = [...new Set(values.map((p) => p.panel).filter((p): p is string => p !== undefined))];
  if (!panels.length) return { $schema: SCHEMA, title: o.title, ...size, data: { values }, layer };
  return {
    $schema: SCHEMA,
    title: o.title,
    data: { values },
    concat: panels.map((panel) => ({
      title: { text: o.panelTitle ? `${o.panelTitle}: ${panel}` : panel, fontSize: 12, fontWeight: 'normal' },
      ...PANEL,
      transform: [{ filter: { field: 'panel', equal: panel } }],
      layer,
    })),
    columns: Math.min(2, panels.length),
    spacing: { row: 24, column: 40 },
    resolve: o.sharedLegend
      ? { scale: { y: 'independent' } }
      : {
          scale: { y: 'independent', color: 'independent', strokeDash: 'independent' },
          legend: { color: 'independent', strokeDash: 'independent' },
        },
  };
}

/** Lines with points, one per series, and mean ± std bands where seeds repeat. */
export function lineChart(
  o: ChartOptions & {
    xType?: 'quantitative' | 'ordinal';
    xLog?: boolean;
    yLog?: boolean;
    xInteger?: boolean;
    xTicks?: number[];
    panelTitle?: string;
    styleTitle?: string;
    refBand?: { lo: number; hi: number; text: string };
  },
): VlSpec {
  const xType = o.xType ?? 'quantitative';
  const axis = {
    ...(o.xInteger ? { format: 'd', tickMinStep: 1 } : {}),
    ...(o.xTicks ? { values: o.xTicks, format: 'd' } : {}),
  };
  const x = {
    field: 'x',
    type: xType,
    title: o.xTitle,
    ...(o.xLog ? { scale: { type: 'log', nice: false, padding: 12 } } : {}),
    ...(xType === 'ordinal' ? { sort: null } : {}),
    ...(Object.keys(axis).length ? { axis } : {}),
  };
  const y = {
    field: 'mean',
    type: 'quantitative',
    title: o.yTitle,
    scale: o.yLog ? { type: 'log', nice: false, padding: 8 } : { zero: false },
  };
  const color = { field: 'series', type: 'nominal', title: o.seriesTitle, sort: null, legend: LEGEND };
  const styles = [...new Set(o.points.map((p) => p.style).filter((v) => v !== undefined))];
  const dashed = styles.length
    ? {
        strokeDash: {
          field: 'style',
          type: 'nominal',
          title: o.styleTitle ?? 'line',
          sort: styles,
          legend: {
            ...LEGEND,
            symbolType: 'stroke',
            symbolStrokeWidth: 2,
            symbolStrokeColor: 'black',
            symbolFillColor: 'black',
            symbolOpacity: 1,
            symbolSize: 300,
          },
        },
      }
    : {};
  const layer: unknown[] = [];
  if (hasBands(o.points) && (!o.yLog || o.points.every((p) => p.lo > 0)))
    layer.push({
      mark: { type: 'errorband', opacity: 0.25 },
      encoding: {
        x,
        y: { field: 'lo', type: 'quantitative', title: o.yTitle },
        y2: { field: 'hi' },
        color,
        ...(styles.length ? { detail: { field: 'style' } } : {}),
      },
    });
  if (o.refBand) {
    // a horizontal band of reference values (e.g. what real images score), drawn under the data
    const band = { lo: o.refBand.lo, hi: o.refBand.hi, text: o.refBand.text };
    layer.unshift(
      {
        data: { values: [band] },
        mark: { type: 'rect', color: '#2ca02c', opacity: 0.15 },
        encoding: { y: { field: 'lo', type: 'quantitative' }, y2: { field: 'hi' } },
      },
      {
        data: { values: [band] },
        mark: { type: 'text', align: 'left', baseline: 'bottom', dx: 4, dy: -2, x: 0, color: '#2a7a2a', fontSize: 11 },
        encoding: { y: { field: 'hi', type: 'quantitative' }, text: { field: 'text' } },
      },
    );
  }
  layer.push({
    mark: { type: 'line', point: o.points.length <= 200 },
    encoding: {
      x,
      y,
      color,
      ...dashed,
      tooltip: [{ field: 'series' }, { field: 'x' }, { field: 'mean', format: '.4g' }, { field: 'n' }],
    },
  });
  return assemble(o, layer, o.points);
}

/** Grouped bars (x category, one bar per series), error bars where seeds repeat, optional labels. */
export function barChart(o: ChartOptions & { yLog?: boolean; panelTitle?: string; sharedLegend?: boolean }): VlSpec {
  const x = {
    field: 'x',
    type: 'nominal',
    title: o.xTitle,
    sort: null,
    axis: { labelAngle: o.points.some((p) => String(p.x).length > 16) ? -25 : 0, labelLimit: 400 },
  };
  // grouped bars only where an x category holds several series (else each bar sits centred on its label)
  const perX = new Map<string, Set<string>>();
  for (const p of o.points) (perX.get(String(p.x)) ?? perX.set(String(p.x), new Set()).get(String(p.x))!).add(p.series);
  const xOffset = [...perX.values()].some((v) => v.size > 1)
    ? { field: 'series', type: 'nominal', sort: null }
    : undefined;
  const color = { field: 'series', type: 'nominal', title: o.seriesTitle, sort: null, legend: LEGEND };
  const y = { field: 'mean', type: 'quantitative', title: o.yTitle, ...(o.yLog ? { scale: { type: 'log' } } : {}) };
  const layer: unknown[] = [
    {
      mark: 'bar',
      encoding: {
        x,
        ...(xOffset ? { xOffset } : {}),
        y,
        color,
        tooltip: [{ field: 'series' }, { field: 'x' }, { field: 'mean', format: '.4g' }, { field: 'n' }],
      },
    },
  ];
  if (hasBands(o.points))
    layer.push({
      mark: { type: 'rule', color: 'black' },
      encoding: { x, ...(xOffset ? { xOffset } : {}), y: { field: 'lo', type: 'quantitative' }, y2: { field: 'hi' } },
    });
  const labelled = o.points.some((p) => p.label);
  if (labelled)
    layer.push({
      mark: { type: 'text', dy: -6, fontSize: 10 },
      encoding: { x, ...(xOffset ? { xOffset } : {}), y, text: { field: 'label' } },
    });
  const values = labelled ? o.points.map((p) => ({ ...p, label: p.label ?? '' })) : o.points;
  const bars = [...perX.values()].reduce((a, v) => a + (xOffset ? v.size : 1), 0);
  return assemble(o, layer, values, { width: Math.min(SIZE.width, 120 + 60 * bars), height: SIZE.height });
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
export async function renderFigure(
  spec: VlSpec,
  dir: string,
  sub: string,
  id: string,
  title: string,
): Promise<FigureFiles> {
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
  const png = await sharp(Buffer.from(svgText), { density: 72 * PNG_SCALE })
    .png()
    .toBuffer();
  const values = (spec.data as { values?: Record<string, unknown>[] } | undefined)?.values ?? [];
  const cols = [...new Set(values.flatMap((v) => Object.keys(v)))];
  const files = {
    svg: `${sub}/${id}.svg`,
    png: `${sub}/${id}.png`,
    spec: `${sub}/${id}.vl.json`,
    data: `${sub}/${id}.data.csv`,
  };
  atomicWrite(join(dir, files.svg), [svgText]);
  atomicWrite(join(dir, files.png), [png]);
  atomicWrite(join(dir, files.spec), [JSON.stringify(spec, null, 2) + '\n']);
  atomicWrite(join(dir, files.data), [
    stringify([cols, ...values.map((v) => cols.map((c) => (v[c] ?? '') as string | number))]),
  ]);
  return { id, title, ...files, width: Number(m[1]), height: Number(m[2]), svgText };
}
