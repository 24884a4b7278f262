// The report's single self-contained page: CSS inline, figures as inline SVG, sample grids as data
// URIs, tables as HTML; every file of the report (tables in Markdown/LaTeX/CSV, figure SVG/PNG, chart
// spec and data, grid images) is also linked, so the page is the index of the whole directory.
import type { FigureFiles } from './figures.js';
import type { Section } from './sections.js';
import { formatCell, type Table } from './tables.js';

export interface PageSection {
  section: Section;
  tables: { table: Table; files: { md: string; tex: string; csv: string } }[];
  figures: FigureFiles[];
  grids: { title: string; file: string; dataUri: string; sha256: string }[];
}

export const esc = (s: string): string => s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

const link = (href: string, text: string) => `<a href="${esc(href)}">${esc(text)}</a>`;

function tableHtml(t: Table): string {
  const head = t.columns.map((c) => `<th>${esc(c.label)}</th>`).join('');
  const body = t.rows
    .map((r) => `<tr>${t.columns.map((c) => `<td class="${c.format && c.format !== 'text' ? 'n' : ''}">${esc(formatCell(r[c.key] ?? null, c.format))}</td>`).join('')}</tr>`)
    .join('\n');
  return `<table><caption>${esc(t.caption)}</caption><thead><tr>${head}</tr></thead><tbody>\n${body}\n</tbody></table>`;
}

export function renderPage(o: { title: string; generated: string; database: string; experiment: string | null; metric: string | null; sections: PageSection[]; extraLinks: { href: string; text: string }[] }): string {
  const toc = o.sections.map((p) => `<li><a href="#${p.section.id}">${esc(p.section.title)}</a>${p.section.skipped.length && !p.figures.length && !p.tables.length && !p.grids.length ? ' <span class="skip">(no data)</span>' : ''}</li>`).join('\n');
  const body = o.sections
    .map((p) => {
      const parts = [`<section id="${p.section.id}"><h2>${esc(p.section.title)}</h2><p>${esc(p.section.description)}</p>`];
      for (const f of p.figures)
        parts.push(
          `<figure id="fig-${esc(f.id)}">${f.svgText}<figcaption>${esc(f.title)} — ${link(f.svg, 'SVG')} · ${link(f.png, 'PNG')} · ${link(f.spec, 'Vega-Lite spec')} · ${link(f.data, 'data (CSV)')}</figcaption></figure>`,
        );
      for (const t of p.tables) parts.push(`<h3>${esc(t.table.title)}</h3>${tableHtml(t.table)}<p class="files">${link(t.files.md, 'Markdown')} · ${link(t.files.tex, 'LaTeX')} · ${link(t.files.csv, 'CSV')}</p>`);
      if (p.grids.length)
        parts.push(
          `<div class="grids">${p.grids.map((g) => `<figure class="grid"><a href="${esc(g.file)}"><img src="${g.dataUri}" alt="${esc(g.title)}"></a><figcaption>${esc(g.title)}<br><code>${esc(g.sha256.slice(0, 16))}…</code></figcaption></figure>`).join('\n')}</div>`,
        );
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
table{border-collapse:collapse;margin:.5em 0;font-size:.9em}caption{caption-side:bottom;text-align:left;color:#555;font-size:.85em;padding-top:.3em}
th,td{border:1px solid #ddd;padding:.25em .6em}th{background:#f4f4f4}td.n{text-align:right;font-variant-numeric:tabular-nums}
figure{margin:1em 0}figure > svg{width:100%;max-width:860px;height:auto}figcaption{font-size:.85em;color:#555}.skip{color:#a33}.files{font-size:.85em}
.grids{display:flex;flex-wrap:wrap;gap:1em}.grid img{width:240px;height:auto;image-rendering:pixelated;border:1px solid #ccc}
code{font-size:.85em}
</style></head><body>
<h1>${esc(o.title)}</h1>
<p>Built from <code>${esc(o.database)}</code>${o.experiment ? `, experiment <code>${esc(o.experiment)}</code>` : ''} on ${esc(o.generated)}. Distribution metric: <b>${esc(o.metric ?? 'none found')}</b>${o.metric === 'fd_mnist' ? ' (Fréchet distance in the MNIST classifier\'s feature space, not FID)' : ''}. ${o.extraLinks.map((l) => link(l.href, l.text)).join(' · ')}</p>
<ol>${toc}</ol>
${body}
</body></html>
`;
}
