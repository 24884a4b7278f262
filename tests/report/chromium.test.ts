// Renders index.html in headless Chromium (where installed) and checks the screenshot shows the
// figures (drawn as <img> of their SVG files, a tall window so they are all in view): pixels in Vega's first two category colours (#4c78a8 blue, #f58518 orange) must be present.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import sharp from 'sharp';
import { buildReport } from '../../src/report/index.js';
import { buildKnownDb } from './known-db.js';
import { buildLargeDb } from './large-db.js';

function findChromium(): string | null {
  const env = process.env.CHROMIUM;
  if (env && existsSync(env)) return env;
  for (const name of ['chromium', 'chromium-browser', 'google-chrome', 'google-chrome-stable']) {
    const r = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' });
    if (r.status === 0 && r.stdout.trim()) return r.stdout.trim();
  }
  return null;
}

const chromium = findChromium();

/** Screenshot of `index` in a 1280 × `height` window; the file written. */
function screenshot(
  index: string,
  dir: string,
  height: number,
): { shot: string; stderr: string; status: number | null } {
  const shot = join(dir, `shot-${height}.png`);
  const p = spawnSync(
    chromium!,
    [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      `--user-data-dir=${mkdtempSync(join(tmpdir(), 'fpdm-chromium-profile-'))}`,
      '--hide-scrollbars',
      `--screenshot=${shot}`,
      `--window-size=1280,${height}`,
      pathToFileURL(index).href,
    ],
    { encoding: 'utf8', timeout: 100_000 },
  );
  return { shot, stderr: p.stderr ?? '', status: p.status };
}

const skip = chromium ? false : 'no Chromium on this machine (apt-get install chromium, or set CHROMIUM=/path)';

test('index.html renders in headless Chromium with the figures visible', { skip, timeout: 120_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'fpdm-chromium-'));
  const db = await buildKnownDb(dir);
  const r = await buildReport({ db, out: join(dir, 'report') });
  const { shot, stderr, status } = screenshot(r.index, dir, 6000);
  assert.ok(existsSync(shot), `chromium wrote no screenshot (exit ${status}): ${stderr.slice(-500)}`);
  const { data, info } = await sharp(shot).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  assert.deepEqual([info.width, info.height], [1280, 6000]);
  let blue = 0;
  let orange = 0;
  for (let i = 0; i < data.length; i += 3) {
    const [R, G, B] = [data[i]!, data[i + 1]!, data[i + 2]!];
    if (Math.abs(R - 0x4c) < 12 && Math.abs(G - 0x78) < 12 && Math.abs(B - 0xa8) < 12) blue++;
    if (Math.abs(R - 0xf5) < 12 && Math.abs(G - 0x85) < 12 && Math.abs(B - 0x18) < 12) orange++;
  }
  assert.ok(blue > 200 && orange > 200, `figure colours on screen: blue ${blue} px, orange ${orange} px`);
});

/** the page of a reproduction-sized database stays shorter than this at 1280 px (it was over 30,000 before) */
const MAX_PAGE_HEIGHT = 20_000;

test(
  `the page of a 78-run database is under ${MAX_PAGE_HEIGHT} px tall in Chromium`,
  { skip, timeout: 300_000 },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fpdm-chromium-large-'));
    const r = await buildReport({ db: await buildLargeDb(dir), out: join(dir, 'report') });
    const window = MAX_PAGE_HEIGHT + 2000;
    const { shot, stderr, status } = screenshot(r.index, dir, window);
    assert.ok(existsSync(shot), `chromium wrote no screenshot (exit ${status}): ${stderr.slice(-500)}`);
    // the content ends where the last non-white row is
    const { data, info } = await sharp(shot).removeAlpha().raw().toBuffer({ resolveWithObject: true });
    let last = 0;
    for (let y = info.height - 1; y >= 0 && !last; y--)
      for (let x = 0; x < info.width; x++) {
        const i = (y * info.width + x) * 3;
        if (data[i]! < 240 || data[i + 1]! < 240 || data[i + 2]! < 240) {
          last = y + 1;
          break;
        }
      }
    assert.ok(last > 3000, `the page rendered (${last} px of content)`);
    assert.ok(last < MAX_PAGE_HEIGHT, `the page is ${last} px tall`);
  },
);
