// The weights fetch protocol against a local HTTP server on 127.0.0.1 serving a small fake file
// (URL and hash prefix injected); the internet is never contacted.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cacheDir, fetchWeights, INCEPTION_WEIGHTS, resolveInceptionWeights } from '../../src/metrics/weights.js';
import { UserError } from '../../src/util/errors.js';

const payload = Buffer.from(Array.from({ length: 100_000 }, (_, i) => (i * 7919) % 251));
const sha = createHash('sha256').update(payload).digest('hex');
const spec = { ...INCEPTION_WEIGHTS, sha256Prefix: sha.slice(0, 8) };
let server: Server;
let base: string;
const ranges: (string | undefined)[] = [];
let dir: string;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'fpdm-weights-'));
  server = createServer((req, res) => {
    ranges.push(req.headers.range);
    if (req.url === '/missing') {
      res.writeHead(404).end();
      return;
    }
    const body = req.url === '/corrupt' ? Buffer.from(payload).fill(1, 500, 600) : payload;
    const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    if (m) {
      const start = Number(m[1]);
      if (start >= body.length) {
        res.writeHead(416).end();
        return;
      }
      res.writeHead(206, {
        'content-length': body.length - start,
        'content-range': `bytes ${start}-${body.length - 1}/${body.length}`,
      });
      res.end(body.subarray(start));
      return;
    }
    res.writeHead(200, { 'content-length': body.length });
    res.end(body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address() as { port: number };
  base = `http://127.0.0.1:${addr.port}`;
});

after(() => {
  server.close();
  rmSync(dir, { recursive: true, force: true });
});

test('downloads, verifies the SHA-256 prefix, then finds the file present', async () => {
  const dest = join(dir, 'a', spec.file);
  const r = await fetchWeights(spec, { dest, url: `${base}/w` });
  assert.equal(r.status, 'downloaded');
  assert.equal(r.sha256, sha);
  assert.deepEqual(readFileSync(dest), payload);
  assert.equal(existsSync(`${dest}.part`), false);
  const again = await fetchWeights(spec, { dest, url: `${base}/w` });
  assert.equal(again.status, 'present');
});

test('resumes a partial download with a Range request', async () => {
  const dest = join(dir, 'b', spec.file);
  await fetchWeights(spec, { dest, url: `${base}/w` }).then(() => rmSync(dest));
  writeFileSync(`${dest}.part`, payload.subarray(0, 30_000));
  ranges.length = 0;
  const r = await fetchWeights(spec, { dest, url: `${base}/w` });
  assert.equal(r.status, 'resumed');
  assert.deepEqual(ranges, ['bytes=30000-']);
  assert.deepEqual(readFileSync(dest), payload);
});

test('a complete .part file (416 on resume) is verified and moved into place', async () => {
  const dest = join(dir, 'c', spec.file);
  await fetchWeights(spec, { dest, url: `${base}/w` }).then(() => rmSync(dest));
  writeFileSync(`${dest}.part`, payload);
  const r = await fetchWeights(spec, { dest, url: `${base}/w` });
  assert.equal(r.sha256, sha);
  assert.ok(existsSync(dest));
});

test('a file with the wrong hash is refused and removed; a bad cached file is replaced', async () => {
  const dest = join(dir, 'd', spec.file);
  await assert.rejects(
    fetchWeights(spec, { dest, url: `${base}/corrupt` }),
    (e) => e instanceof UserError && /does not start with/.test(e.message),
  );
  assert.equal(existsSync(dest), false);
  assert.equal(existsSync(`${dest}.part`), false);
  writeFileSync(dest, 'not the weights');
  const r = await fetchWeights(spec, { dest, url: `${base}/w` });
  assert.equal(r.status, 'downloaded');
  assert.deepEqual(readFileSync(dest), payload);
});

test('offline (connection refused) and HTTP errors fail fast with where to place the file', async () => {
  const dest = join(dir, 'e', spec.file);
  const closed = createServer();
  await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
  const port = (closed.address() as { port: number }).port;
  await new Promise<void>((r) => closed.close(() => r()));
  const t0 = Date.now();
  await assert.rejects(
    fetchWeights(spec, { dest, url: `http://127.0.0.1:${port}/w` }),
    (e) => e instanceof UserError && e.message.includes(`place it at ${dest}`) && /ECONNREFUSED/.test(e.message),
  );
  assert.ok(Date.now() - t0 < 5000);
  await assert.rejects(
    fetchWeights(spec, { dest, url: `${base}/missing` }),
    (e) => e instanceof UserError && /HTTP 404/.test(e.message),
  );
});

test('the cache follows XDG_CACHE_HOME; resolveInceptionWeights explains how to get the file', () => {
  assert.equal(cacheDir({ XDG_CACHE_HOME: '/x/cache' }), join('/x/cache', 'fpdm-exp'));
  assert.match(cacheDir({}), /\.cache[/\\]fpdm-exp$/);
  const saved = process.env.XDG_CACHE_HOME;
  process.env.XDG_CACHE_HOME = join(dir, 'empty-cache');
  try {
    assert.throws(
      () => resolveInceptionWeights(),
      (e) =>
        e instanceof UserError &&
        e.message.includes('weights fetch inception') &&
        e.message.includes(join(dir, 'empty-cache', 'fpdm-exp', INCEPTION_WEIGHTS.file)),
    );
    assert.throws(() => resolveInceptionWeights(join(dir, 'nope.pth')), /does not exist/);
  } finally {
    if (saved === undefined) delete process.env.XDG_CACHE_HOME;
    else process.env.XDG_CACHE_HOME = saved;
  }
});
