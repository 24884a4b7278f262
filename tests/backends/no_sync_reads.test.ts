// The webgpu backend cannot read a GPU tensor synchronously under Node (WebGPUBackend.readSync needs
// OffscreenCanvas): every host read in src/ must be asynchronous (`await t.data()` / `await t.array()`).
// This scans src/**/*.ts and fails listing each file and line that calls dataSync(, arraySync( or
// bufferSync(, so the rule holds from now on.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '..', '..');
const SYNC_READ = /\b(dataSync|arraySync|bufferSync)\s*\(/;

/** 1-based line numbers and text of the synchronous reads in a source text. */
function syncReadsIn(text: string): { line: number; text: string }[] {
  const hits: { line: number; text: string }[] = [];
  text.split('\n').forEach((l, i) => {
    if (SYNC_READ.test(l)) hits.push({ line: i + 1, text: l.trim() });
  });
  return hits;
}

function tsFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...tsFiles(p));
    else if (e.isFile() && e.name.endsWith('.ts')) out.push(p);
  }
  return out;
}

test('the scanner finds synchronous reads (and not their asynchronous forms)', () => {
  assert.deepEqual(
    syncReadsIn('const a = 1;\nconst v = t.dataSync()[0];\n').map((h) => h.line),
    [2],
  );
  assert.equal(syncReadsIn('x.arraySync ()').length, 1);
  assert.equal(syncReadsIn('const b = x.bufferSync();').length, 1);
  assert.equal(
    syncReadsIn('const v = await t.data(); const w = await t.array(); const b = await t.buffer();').length,
    0,
  );
});

test('no file under src/ reads a tensor synchronously (dataSync/arraySync/bufferSync)', () => {
  const files = tsFiles(join(ROOT, 'src'));
  assert.ok(files.length > 20, `found only ${files.length} source files under ${join(ROOT, 'src')}`);
  const offenders: string[] = [];
  for (const f of files) {
    for (const h of syncReadsIn(readFileSync(f, 'utf8'))) offenders.push(`${relative(ROOT, f)}:${h.line}: ${h.text}`);
  }
  assert.deepEqual(
    offenders,
    [],
    `synchronous tensor reads (they throw on webgpu under Node; use await t.data() / t.array() / t.buffer()):\n${offenders.join('\n')}`,
  );
});
