// `fpdm-exp weights fetch inception` against a local 127.0.0.1 server (never the internet):
// a file with the wrong hash is refused (exit 2), an unreachable server fails fast with where to put
// the file by hand; `weights where` reports the XDG cache path.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ROOT } from '../cli.js';

const dir = mkdtempSync(join(tmpdir(), 'fpdm-cli-weights-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));
const env = { ...process.env, XDG_CACHE_HOME: join(dir, 'cache') };
const FILE = 'pt_inception-2015-12-05-6726825d.pth';

/** runs the CLI without blocking the event loop (the test's HTTP server must keep answering) */
function runCliAsync(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((res) => {
    const p = spawn(process.execPath, ['--import', 'tsx', resolve(ROOT, 'src', 'cli', 'run.ts'), ...args], {
      cwd: ROOT,
      env,
    });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('close', (code) => res({ code: code ?? -1, stdout, stderr }));
  });
}

test('weights fetch refuses a download whose SHA-256 does not start with 6726825d, and leaves nothing behind', async () => {
  let hits = 0;
  const server = createServer((_req, res) => {
    hits++;
    res.writeHead(200, { 'content-length': 1000 }).end(Buffer.alloc(1000, 7));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  try {
    const r = await runCliAsync(['weights', 'fetch', 'inception', '--url', `http://127.0.0.1:${port}/${FILE}`]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /does not start with 6726825d/);
    assert.equal(hits, 1);
    const cached = join(dir, 'cache', 'fpdm-exp', FILE);
    assert.equal(existsSync(cached), false);
    assert.equal(existsSync(`${cached}.part`), false);
  } finally {
    server.close();
  }
});

test('weights fetch with no server fails fast and says where to place the file; weights where shows the cache', async () => {
  const closed = createServer();
  await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
  const port = (closed.address() as { port: number }).port;
  await new Promise<void>((r) => closed.close(() => r()));
  const r = await runCliAsync(['weights', 'fetch', 'inception', '--url', `http://127.0.0.1:${port}/${FILE}`]);
  assert.equal(r.code, 2, r.stderr);
  assert.ok(r.stderr.includes(`place it at ${join(dir, 'cache', 'fpdm-exp', FILE)}`), r.stderr);
  const w = await runCliAsync(['weights', 'where', '--json']);
  assert.equal(w.code, 0, w.stderr);
  const j = JSON.parse(w.stdout) as { name: string; path: string; present: boolean; sha256Prefix: string }[];
  assert.deepEqual(
    j.map((e) => [e.name, e.present, e.sha256Prefix]),
    [['inception', false, '6726825d']],
  );
  assert.equal(j[0]!.path, join(dir, 'cache', 'fpdm-exp', FILE));
  const u = await runCliAsync(['weights', 'fetch', 'vgg']);
  assert.equal(u.code, 2);
  assert.match(u.stderr, /unknown weights 'vgg'/);
});
