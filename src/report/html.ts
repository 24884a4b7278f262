// The report's page: CSS inline, figures as <img> of their SVG files (sized, lazily loaded), sample
// grids as thumbnails linking to the full images, tables as HTML (long ones only linked, with their
// summary on the page); every file of the report (tables in Markdown/LaTeX/CSV, figure SVG/PNG, chart
// spec and data, grid images) is linked, so the page is the index of the whole directory and stays
// light at any number of runs.
import type { FigureFiles } from './figures.js';
import type { Section } from './sections.js';
import { formatCell, visibleColumns, type Table } from './tables.js';

export interface PageSection {
  section: Section;
  tables: { table: Table; files: { md: string; tex: string; csv: string } }[];
  figures: FigureFiles[];
  grids: { title: string; file: string; sha256: string; main: boolean }[];
}

export const esc = (s: string): string =>
  s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

const link = (href: string, text: string) => `<a href="${esc(href)}">${esc(text)}</a>`;
/** figures are drawn FIGURE_ZOOM times their SVG size (readable text), at most FIGURE_MAX_WIDTH CSS pixels wide */
const FIGURE_MAX_WIDTH = 1060;
const FIGURE_ZOOM = 1.4;

function tableHtml(t: Table): string {
  const cols = visibleColumns(t);
  const head = cols.map((c) => `<th>${esc(c.label)}</th>`).join('');
  const body = t.rows
    .map(
      (r) =>
        `<tr>${cols.map((c) => `<td class="${c.format && c.format !== 'text' ? 'n' : ''}">${esc(formatCell(r[c.key] ?? null, c.format))}</td>`).join('')}</tr>`,
    )
    .join('\n');
  return `<table><caption>${esc(t.caption)}</caption><thead><tr>${head}</tr></thead><tbody>\n${body}\n</tbody></table>`;
}

function figureHtml(f: FigureFiles): string {
  const w = Math.min(FIGURE_MAX_WIDTH, Math.round(f.width * FIGURE_ZOOM));
  const h = Math.round((f.height * w) / f.width);
  return `<figure id="fig-${esc(f.id)}"><a href="${esc(f.svg)}"><img src="${esc(f.svg)}" width="${w}" height="${h}" loading="lazy" alt="${esc(f.title)}"></a><figcaption>${esc(f.title)} — ${link(f.svg, 'SVG')} · ${link(f.png, 'PNG')} · ${link(f.spec, 'Vega-Lite spec')} · ${link(f.data, 'data (CSV)')}</figcaption></figure>`;
}

function gridsHtml(grids: PageSection['grids']): string {
  const main = grids.filter((g) => g.main);
  const rest = grids.filter((g) => !g.main);
  const thumbs = main
    .map(
      (g) =>
        `<figure class="grid"><a href="${esc(g.file)}"><img src="${esc(g.file)}" loading="lazy" alt="${esc(g.title)}"></a><figcaption>${esc(g.title)}</figcaption></figure>`,
    )
    .join('\n');
  const list = rest.length
    ? `<details><summary>${rest.length} further sample grids (other seeds and configurations)</summary><ul class="gridlist">${rest.map((g) => `<li>${link(g.file, g.title)}</li>`).join('')}</ul></details>`
    : '';
  return `<div class="grids">${thumbs}</div>${list}`;
}

export function renderPage(o: {
  title: string;
  generated: string;
  database: string;
  experiment: string | null;
  metric: string | null;
  sections: PageSection[];
  extraLinks: { href: string; text: string }[];
}): string {
  const toc = o.sections
    .map(
      (p) =>
        `<li><a href="#${p.section.id}">${esc(p.section.title)}</a>${p.section.skipped.length && !p.figures.length && !p.tables.length && !p.grids.length ? ' <span class="skip">(no data)</span>' : ''}</li>`,
    )
    .join('\n');
  const body = o.sections
    .map((p) => {
      const parts = [
        `<section id="${p.section.id}"><h2>${esc(p.section.title)}</h2><p>${esc(p.section.description)}</p>`,
      ];
      for (const n of p.section.notes ?? []) parts.push(`<p class="note">${esc(n)}</p>`);
      for (const f of p.figures) parts.push(figureHtml(f));
      for (const t of p.tables.filter((x) => !x.table.filesOnly))
        parts.push(
          `<h3>${esc(t.table.title)}</h3>${tableHtml(t.table)}<p class="files">${link(t.files.md, 'Markdown')} · ${link(t.files.tex, 'LaTeX')} · ${link(t.files.csv, 'CSV')}</p>`,
        );
      for (const t of p.tables.filter((x) => x.table.filesOnly))
        parts.push(
          `<p class="files"><b>${esc(t.table.title)}</b> (${t.table.rows.length} rows, as files only): ${link(t.files.csv, 'CSV')} · ${link(t.files.md, 'Markdown')} · ${link(t.files.tex, 'LaTeX')}. ${esc(t.table.caption)}</p>`,
        );
      if (p.grids.length) parts.push(gridsHtml(p.grids));
      for (const why of p.section.skipped) parts.push(`<p class="skip">Not shown: ${esc(why)}.</p>`);
      parts.push('</section>');
      return parts.join('\n');
    })
    .join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(o.title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font-family:system-ui,-apple-system,"DejaVu Sans",sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.5em 0;font-size:.85em}caption{caption-side:bottom;text-align:left;color:#555;font-size:.85em;padding-top:.3em}
th,td{border:1px solid #ddd;padding:.25em .5em;vertical-align:top}th{background:#f4f4f4}td.n{text-align:right;font-variant-numeric:tabular-nums}
#verdicts td{max-width:22em}#verdicts td:last-child{font-weight:600}
figure{margin:1em 0}figure img{max-width:100%;height:auto}figcaption{font-size:.85em;color:#555}.skip{color:#a33}.files,.note{font-size:.85em}.note{color:#444;background:#f7f7f2;padding:.3em .6em}
.grids{display:flex;flex-wrap:wrap;gap:.8em}.grid{margin:0;width:150px}.grid img{width:150px;height:auto;image-rendering:pixelated;border:1px solid #ccc}.grid figcaption{font-size:.75em}
.gridlist{columns:2;font-size:.8em}
code{font-size:.85em}
</style></head><body>
<h1>${esc(o.title)}</h1>
<p>Built from <code>${esc(o.database)}</code>${o.experiment ? `, experiment <code>${esc(o.experiment)}</code>` : ''} on ${esc(o.generated)}. Distribution metric: <b>${esc(o.metric ?? 'none found')}</b>${o.metric === 'fd_mnist' ? " (Fréchet distance in the MNIST classifier's feature space, not FID)" : ''}. ${o.extraLinks.map((l) => link(l.href, l.text)).join(' · ')}</p>
<ol>${toc}</ol>
${body}
</body></html>
`;
}
