import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import sharp from 'sharp';
import { buildReport, type ReportResult } from '../../src/report/index.js';
import { PNG_SCALE } from '../../src/report/figures.js';
import { UserError } from '../../src/util/errors.js';
import {
  ALLOCS,
  BUDGETS,
  DEPTHS,
  GRID_SIZE,
  MODELS,
  SEEDS,
  SJFB,
  TIMESTEPS,
  allocValue,
  buildKnownDb,
  depthValue,
  ipsValue,
  lossValue,
  residualValue,
  sjfbValue,
  splitValue,
  sweepValue,
} from './known-db.js';
import { csvRecords } from './csv.js';

/** mean and sample std (N−1) of f(seed) over SEEDS: the expected table numbers, by formula */
function seedStats(f: (seed: number) => number): { mean: number; std: number } {
  const v = SEEDS.map(f);
  const mean = v.reduce((a, b) => a + b, 0) / v.length;
  return { mean, std: Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / (v.length - 1)) };
}
const close = (got: string | undefined, want: number, what: string) => {
  assert.ok(got !== undefined && got !== '', `${what}: missing`);
  assert.ok(Math.abs(Number(got) - want) <= 1e-9 * Math.max(1, Math.abs(want)), `${what}: got ${got}, want ${want}`);
};
const walk = (dir: string): string[] =>
  readdirSync(dir).flatMap((n) => (statSync(join(dir, n)).isDirectory() ? walk(join(dir, n)) : [join(dir, n)]));

let root: string;
let r: ReportResult;
const table = (id: string) => csvRecords(readFileSync(join(r.out, 'tables', `${id}.csv`), 'utf8'));

before(async () => {
  root = mkdtempSync(join(tmpdir(), 'fpdm-report-'));
  const db = await buildKnownDb(root, { ablations: true });
  r = await buildReport({ db, experiment: 'known', out: join(root, 'report') });
});

describe('report tables from a database of known rows', () => {
  test('FID vs budget: one line per model, mean and std over seeds, best split at budget 10', () => {
    const rows = table('fid_vs_budget');
    assert.deepEqual([...new Set(rows.map((x) => x.model))], ['DiT-S/2', 'FPDM-S/2']);
    for (const m of MODELS)
      for (const b of BUDGETS) {
        const row = rows.find((x) => x.model === m.model && Number(x.budget) === b);
        assert.ok(row, `${m.model} @ ${b}`);
        // FPDM at budget 10 ran three splits; 5×2 (8 + 0.1·seed) beats the 10×1 sweep value
        const want =
          m.family === 'fpdm' && b === 10 ? seedStats((s) => splitValue(5, s)) : seedStats((s) => sweepValue(m, b, s));
        close(row['FID mean'], want.mean, `${m.model} @ ${b} mean`);
        close(row['FID std'], want.std, `${m.model} @ ${b} std`);
        assert.equal(row.seeds, String(SEEDS.length));
        if (m.family === 'fpdm' && b === 10) assert.deepEqual([row.steps, row.iters, row.splits], ['5', '2', '3']);
      }
    assert.equal(
      rows.length,
      MODELS.length * BUDGETS.length,
      'the failed run and the ablation variants are not lines of their own',
    );
  });

  test('timestep smoothing: every split at budget 10', () => {
    const rows = table('smoothing_fid');
    assert.deepEqual(
      rows.map((x) => x['steps × iters']),
      ['2×5', '5×2', '10×1'],
    );
    for (const x of rows) {
      const steps = Number(x['steps × iters']!.split('×')[0]);
      const want =
        steps === 10 ? seedStats((s) => sweepValue(MODELS[1]!, 10, s)) : seedStats((s) => splitValue(steps, s));
      close(x['FID mean'], want.mean, `split ${steps}`);
      close(x['FID std'], want.std, `split ${steps}`);
    }
  });

  test('reuse on/off and allocation schedules at equal budget', () => {
    const rows = table('reuse_allocation_fid');
    for (const [i, alloc] of ALLOCS.entries())
      for (const reuse of [false, true]) {
        const x = rows.find((y) => y['allocation / reuse'] === `${alloc} / reuse ${reuse ? 'on' : 'off'}`);
        assert.ok(x, `${alloc} reuse ${reuse}`);
        const want = seedStats((s) => allocValue(i, reuse, s));
        close(x['FID mean'], want.mean, `${alloc}/${reuse} mean`);
        close(x['FID std'], want.std, `${alloc}/${reuse} std`);
      }
  });

  test('params and peak memory with the percentage saved against the paired DiT', () => {
    const rows = table('params_memory');
    const [dit, fpdm] = MODELS;
    const f = rows.find((x) => x.model === fpdm!.model)!;
    assert.equal(f.vs, dit!.model);
    close(f['Parameters (M)'], fpdm!.params / 1e6, 'params');
    close(f['Parameters saved'], (1 - fpdm!.params / dit!.params) * 100, 'params saved');
    close(f['Peak training memory (MiB)'], fpdm!.train / 2 ** 20, 'train MiB');
    close(f['Peak training memory saved'], (1 - fpdm!.train / dit!.train) * 100, 'train saved');
    // the checkpointed measurement is its own column, not averaged into the plain one
    close(f['Peak training memory, gradient checkpointing (MiB)'], fpdm!.trainCkpt / 2 ** 20, 'train ckpt MiB');
    close(
      f['Peak training memory, gradient checkpointing saved'],
      (1 - fpdm!.trainCkpt / dit!.trainCkpt) * 100,
      'train ckpt saved',
    );
    close(f['Peak sampling memory saved'], (1 - fpdm!.sample / dit!.sample) * 100, 'sample saved');
    assert.equal(rows.find((x) => x.model === dit!.model)!['Parameters saved'], '');
  });

  test('throughput with block evaluations, FLOPs and seconds side by side', () => {
    const rows = table('throughput');
    for (const m of MODELS)
      for (const b of BUDGETS) {
        const x = rows.find((y) => y.model === m.model && Number(y.budget) === b)!;
        const want = seedStats((s) => ipsValue(m.family, b, s));
        close(x['images/s mean'], want.mean, 'ips');
        close(x['images/s std'], want.std, 'ips std');
        close(x['block evals / image'], 12 * b, 'block evals');
        close(x['FLOPs / image'], 1e9 * b, 'flops');
        close(x.seconds, b / 10, 'seconds');
      }
  });

  test('training loss and fixed-point residual summaries', () => {
    const loss = table('train_loss');
    for (const m of MODELS) {
      const x = loss.find((y) => y.model === m.model)!;
      const want = seedStats((s) => lossValue(m.family, 100, s));
      close(x['last loss mean'], want.mean, 'last loss');
      close(x['last loss std'], want.std, 'last loss std');
      close(x['first loss'], seedStats((s) => lossValue(m.family, 0, s)).mean, 'first loss');
    }
    // per timestep: in the CSV only (the page has a summary per configuration)
    const res = table('fp_residual_by_timestep');
    for (const t of TIMESTEPS) {
      const x = res.find((y) => y.timestep === String(t))!;
      close(x['first residual'], residualValue(t, 0), `t=${t} first`);
      close(x['last residual'], residualValue(t, 3), `t=${t} last`);
      assert.equal(x.iterations, '4');
    }
    const sum = table('fp_residual');
    assert.equal(sum.length, 1, 'one sampling configuration stored residuals');
    const last = TIMESTEPS.map((t) => residualValue(t, 3)).sort((a, b) => a - b);
    close(sum[0]!['final residual median'], last[1]!, 'median over timesteps');
    close(sum[0]!['final residual max'], last[2]!, 'max over timesteps');
    assert.equal(sum[0]!['t of max'], String(Math.max(...TIMESTEPS)));
  });

  test('Markdown and LaTeX renderings exist for every table', () => {
    for (const id of r.tables) {
      const md = readFileSync(join(r.out, 'tables', `${id}.md`), 'utf8');
      const tex = readFileSync(join(r.out, 'tables', `${id}.tex`), 'utf8');
      assert.match(md, /^### .+\n\n.+\n\n\| .+ \|\n\| (---:?|---)( \| (---:?|---))* \|\n/);
      assert.match(tex, /\\begin\{tabular\}[\s\S]*\\toprule[\s\S]*\\midrule[\s\S]*\\bottomrule[\s\S]*\\end\{table\}/);
      assert.ok(
        !/[^\\]_/.test(
          tex
            .split('\n')
            .filter((l) => !l.startsWith('%') && !l.includes('\\label'))
            .join('\n'),
        ),
        `${id}.tex has an unescaped _`,
      );
    }
    assert.match(
      readFileSync(join(r.out, 'tables', 'fid_vs_budget.md'), 'utf8'),
      /\| FPDM-S\/2 \| 10 \| 5 \| 2 \| 8\.1 \| 0\.1 \| 3 \| 3 \|/,
    );
  });
});

describe('report figures', () => {
  const expected: Record<string, { axes: string[]; series: string[] }> = {
    fid_vs_budget: {
      axes: ['Sampling budget (DiT-step equivalents, log scale)', 'FID'],
      series: ['DiT-S/2', 'FPDM-S/2'],
    },
    smoothing_fid: {
      axes: ['Sampling steps (log scale; fewer steps = more iterations per step)', 'FID'],
      series: ['budget 10', 'FPDM', 'DiT-S/2 at the same budget'],
    },
    reuse_allocation_fid: { axes: ['allocation / reuse', 'FID'], series: ['FPDM-S/2 @ budget 10 (steps=5)'] },
    params_memory: {
      axes: [
        'model (labels: Models table)',
        'Parameters (M)',
        'Peak training memory (MiB)',
        'Peak training memory, gradient checkpointing (MiB)',
        'Peak sampling memory (MiB)',
      ],
      series: ['dit', 'fpdm'],
    },
    saved_vs_paper: {
      axes: ['quantity', 'saved (%)'],
      series: ['paper (DiT-XL/2 vs FPDM, ImageNet)', 'ours (FPDM-S/2 vs DiT-S/2)'],
    },
    throughput: {
      axes: ['Sampling budget (DiT-step equivalents, log scale)', 'Throughput (images/s)'],
      series: ['DiT-S/2', 'FPDM-S/2'],
    },
    train_loss: { axes: ['optimizer step', 'Training loss'], series: ['DiT-S/2', 'FPDM-S/2'] },
    fp_residual_by_timestep: {
      axes: ['diffusion timestep t (sampling goes 999 → 0)', 'Fixed-point residual (last iteration)'],
      series: ['10×1 fixed, reuse off'],
    },
    'fp_residual_FPDM-S_2': {
      axes: ['fixed-point iteration', 'Fixed-point residual'],
      series: TIMESTEPS.map((t) => `t=${t}`),
    },
  };
  const texts = (svg: string) =>
    [...svg.matchAll(/<text[^>]*>([^<]*)<\/text>/g)].map((m) =>
      m[1]!.replace(/&amp;/g, '&').replace(/&lt;/g, '<').replace(/&gt;/g, '>'),
    );

  test('every expected figure is an SVG with its axis titles and series, and a PNG of the expected size', async () => {
    assert.deepEqual([...r.figures].sort(), Object.keys(expected).sort());
    for (const [id, want] of Object.entries(expected)) {
      const svg = readFileSync(join(r.out, 'figures', `${id}.svg`), 'utf8');
      assert.match(svg, /^<svg [^>]*xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
      assert.ok(svg.trimEnd().endsWith('</svg>'));
      const t = texts(svg);
      for (const a of want.axes)
        assert.ok(t.includes(a), `${id}: axis title '${a}' not in ${JSON.stringify(t.slice(0, 40))}`);
      for (const s of want.series) assert.ok(t.includes(s), `${id}: series '${s}' not in the legend`);
      const [, w, h] = /width="([\d.]+)" height="([\d.]+)"/.exec(svg)!;
      const meta = await sharp(join(r.out, 'figures', `${id}.png`)).metadata();
      assert.equal(meta.format, 'png');
      assert.equal(meta.width, Math.round(Number(w) * PNG_SCALE), `${id} png width`);
      assert.equal(meta.height, Math.round(Number(h) * PNG_SCALE), `${id} png height`);
      // the saved spec carries its data, and the data CSV has one row per plotted point
      const spec = JSON.parse(readFileSync(join(r.out, 'figures', `${id}.vl.json`), 'utf8')) as {
        data: { values: unknown[] };
      };
      assert.ok(spec.data.values.length > 0);
      assert.equal(
        csvRecords(readFileSync(join(r.out, 'figures', `${id}.data.csv`), 'utf8')).length,
        spec.data.values.length,
      );
    }
    // the budget figure's points are the table's means
    const spec = JSON.parse(readFileSync(join(r.out, 'figures', 'fid_vs_budget.vl.json'), 'utf8')) as {
      data: { values: { series: string; x: number; mean: number; lo: number; hi: number }[] };
    };
    const p = spec.data.values.find((v) => v.series === 'DiT-S/2' && v.x === 5)!;
    const want = seedStats((s) => sweepValue(MODELS[0]!, 5, s));
    assert.ok(Math.abs(p.mean - want.mean) < 1e-9 && Math.abs(p.hi - p.lo - 2 * want.std) < 1e-9);
  });

  test('sections without data are skipped and say so; no empty figure is drawn', () => {
    assert.deepEqual(r.skipped.map((s) => s.section).sort(), ['depth', 'sjfb']);
    const html = readFileSync(r.index, 'utf8');
    assert.match(html, /Not shown: fewer than two pre\/post depth settings/);
    assert.match(html, /Not shown: fewer than two S-JFB range settings/);
    assert.ok(!r.figures.some((f) => f.startsWith('depth') || f.startsWith('sjfb')));
  });
});

describe('index.html', () => {
  test('links every file of the report; figures as sized <img> of their SVG; grids as thumbnails linking the files', async () => {
    const html = readFileSync(r.index, 'utf8');
    const refs = new Set([...html.matchAll(/(?:href|src)="([^"]+)"/g)].map((m) => m[1]!));
    for (const f of walk(r.out)) {
      const rel = relative(r.out, f);
      if (rel === 'index.html' || rel.startsWith('.')) continue;
      assert.ok(refs.has(rel), `index.html does not link ${rel}`);
    }
    assert.ok(!html.includes('<svg'), 'no inline SVG');
    assert.ok(!html.includes('data:'), 'no data URIs');
    for (const id of r.figures)
      assert.match(
        html,
        new RegExp(`<img src="figures/${id.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\.svg" width="\\d+" height="\\d+"`),
        `${id} as a sized img`,
      );
    // one thumbnail per model and budget (the quality figure's configuration, first seed), each a link to its file
    const thumbs = [...html.matchAll(/<figure class="grid"><a href="([^"]+)"><img src="([^"]+)"/g)];
    assert.equal(thumbs.length, MODELS.length * BUDGETS.length);
    for (const [, href, src] of thumbs) {
      assert.equal(href, src);
      const meta = await sharp(join(r.out, src!)).metadata();
      assert.deepEqual([meta.width, meta.height], [GRID_SIZE.width, GRID_SIZE.height]);
    }
    assert.ok(
      !/https?:\/\/(?!www\.w3\.org)/.test(html.replace(/xmlns(:xlink)?="[^"]+"/g, '')),
      'no external resources',
    );
  });
});

describe('other databases', () => {
  test('pre/post depth and S-JFB ranges of the ablation experiment', async () => {
    const a = await buildReport({ db: join(root, 'fpdm.sqlite'), experiment: 'ablation', out: join(root, 'ablation') });
    assert.ok(a.figures.includes('depth_fid') && a.figures.includes('sjfb_fid'));
    const depth = csvRecords(readFileSync(join(a.out, 'tables', 'depth_fid.csv'), 'utf8'));
    for (const [pre, post] of DEPTHS) {
      const x = depth.find((y) => y['pre / post'] === `${pre} / ${post}`)!;
      close(x['FID mean'], seedStats((s) => depthValue(pre, s)).mean, 'depth mean');
      close(x['FID std'], seedStats((s) => depthValue(pre, s)).std, 'depth std');
    }
    const sj = csvRecords(readFileSync(join(a.out, 'tables', 'sjfb_fid.csv'), 'utf8'));
    for (const [ng, g] of SJFB)
      close(
        sj.find((y) => y['no-grad / grad'] === `${ng} / ${g}`)!['FID mean'],
        seedStats((s) => sjfbValue(ng, s)).mean,
        'sjfb',
      );
    assert.ok(
      a.skipped.some((s) => s.section === 'train_loss'),
      'no loss curves in this experiment',
    );
    // residuals stored for the last iteration only: drawn against the timestep, and the page says so
    assert.ok(a.figures.includes('fp_residual_by_timestep'));
    const res = csvRecords(readFileSync(join(a.out, 'tables', 'fp_residual_by_timestep.csv'), 'utf8'));
    for (const t of TIMESTEPS) {
      const x = res.find((y) => y.timestep === String(t) && y.model === 'FPDM-S/2' && y.budget === '30')!;
      close(x['last residual'], seedStats((s) => residualValue(t, 2) + 0.01 * s).mean, `t=${t}`);
      assert.equal(x.iterations, '3');
      const y = res.find((z) => z.timestep === String(t) && z.model === 'FPDM-S/2' && z.budget === '50')!;
      close(y['last residual'], residualValue(t, 4), `t=${t} budget 50`);
      assert.equal(y.iterations, '5');
    }
    assert.ok(
      a.skipped.some(
        (s) =>
          s.section === 'fp_residual' &&
          /residual vs iteration: no run stored the residual of every iteration/.test(s.reason),
      ),
    );
    const svg = readFileSync(join(a.out, 'figures', 'fp_residual_by_timestep.svg'), 'utf8');
    assert.ok(svg.includes('diffusion timestep t') && svg.includes('budget 30') && svg.includes('budget 50'));
  });

  test('fd_mnist is labelled by its own name, never as FID', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fpdm-report-fd-'));
    const db = await buildKnownDb(dir, { metric: 'fd_mnist' });
    const f = await buildReport({ db, out: join(dir, 'out') });
    assert.equal(f.metric, 'fd_mnist');
    assert.ok(f.figures.includes('fd_mnist_vs_budget'));
    const svg = readFileSync(join(f.out, 'figures', 'fd_mnist_vs_budget.svg'), 'utf8');
    assert.ok(svg.includes('FD (MNIST classifier)'));
    // our numbers never as FID: only the paper's own columns (labelled "paper") may say FID
    for (const file of walk(f.out).filter((p) => /\.(svg|md|tex|csv)$/.test(p)))
      for (const line of readFileSync(file, 'utf8').split('\n'))
        if (/\bFID\b/.test(line))
          assert.ok(/paper|Table 1|Table 5/.test(line) && !/\bours [^|,]*FID/.test(line), `${file}: ${line}`);
    const html = readFileSync(f.index, 'utf8');
    assert.match(html, /not FID/);
  });

  test('a second distribution metric (kid_mnist beside fd_mnist) gets its own budget table and figure', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fpdm-report-kid-'));
    const db = await buildKnownDb(dir, { metric: 'fd_mnist', second: 'kid_mnist' });
    const f = await buildReport({ db, out: join(dir, 'out') });
    assert.equal(f.metric, 'fd_mnist', 'the ablation sections keep the first metric');
    assert.ok(f.figures.includes('fd_mnist_vs_budget') && f.figures.includes('kid_mnist_vs_budget'));
    const kid = csvRecords(readFileSync(join(f.out, 'tables', 'kid_mnist_vs_budget.csv'), 'utf8'));
    assert.equal(kid.length, MODELS.length * BUDGETS.length);
    for (const m of MODELS)
      for (const b of BUDGETS) {
        const row = kid.find((x) => x.model === m.model && Number(x.budget) === b)!;
        // only the sweep's runs carry kid_mnist, so its value is the sweep's at every budget
        close(
          row['KID (MNIST classifier) mean'],
          seedStats((sd) => 0.01 * sweepValue(m, b, sd)).mean,
          `${m.model} @ ${b}`,
        );
      }
  });

  test('an empty database gives a page that says what is missing; an unknown experiment is a UserError', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fpdm-report-empty-'));
    const { openStore } = await import('../../src/store/index.js');
    openStore(join(dir, 'e.sqlite')).close();
    const e = await buildReport({ db: join(dir, 'e.sqlite'), out: join(dir, 'out') });
    assert.equal(e.figures.length, 0);
    assert.ok(e.skipped.length >= 10);
    assert.match(readFileSync(e.index, 'utf8'), /no completed run has a distribution metric/);
    await assert.rejects(
      buildReport({ db: join(dir, 'e.sqlite'), experiment: 'nope', out: join(dir, 'o2') }),
      (err: unknown) => err instanceof UserError && /nope/.test(err.message),
    );
    await assert.rejects(buildReport({ db: join(dir, 'missing.sqlite'), out: join(dir, 'o3') }), UserError);
  });
});
