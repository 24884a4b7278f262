// The FID Inception weights: where they are cached, how they are fetched and verified.
//   file    pt_inception-2015-12-05-6726825d.pth (legacy torch serialization, 566 keys, ~95.5 MB)
//   source  pytorch-fid's GitHub release `fid_weights`
//   check   SHA-256 must start with 6726825d (the suffix pytorch-fid puts in the name)
//   cache   $XDG_CACHE_HOME/fpdm-exp/ (default ~/.cache/fpdm-exp/)
// Downloads stream into `<file>.part`, resume with an HTTP Range request, and are renamed into place
// only after the hash matches; a file that fails the check is removed.
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync, mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { UserError } from '../util/errors.js';

export interface WeightsSpec {
  name: string;
  file: string;
  url: string;
  sha256Prefix: string;
}

export const INCEPTION_WEIGHTS: WeightsSpec = {
  name: 'inception',
  file: 'pt_inception-2015-12-05-6726825d.pth',
  url: 'https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth',
  sha256Prefix: '6726825d',
};

export const KNOWN_WEIGHTS: Record<string, WeightsSpec> = { inception: INCEPTION_WEIGHTS };

/** $XDG_CACHE_HOME/fpdm-exp, or ~/.cache/fpdm-exp when XDG_CACHE_HOME is unset or not absolute. */
export function cacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env.XDG_CACHE_HOME;
  const base = xdg && xdg.startsWith('/') ? xdg : join(homedir(), '.cache');
  return join(base, 'fpdm-exp');
}

export function cachedWeightsPath(spec: WeightsSpec = INCEPTION_WEIGHTS): string {
  return join(cacheDir(), spec.file);
}

export async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  await pipeline(createReadStream(path), h);
  return h.digest('hex');
}

function manualHint(spec: WeightsSpec, dest: string): string {
  return `download ${spec.url} on a machine with network access and place it at ${dest} (or pass --weights FILE pointing at it or at a safetensors copy)`;
}

/**
 * The Inception weights to use: `--weights` if given (must exist), else the cached file; otherwise a
 * UserError that says how to get it.
 */
export function resolveInceptionWeights(opt?: string): string {
  if (opt) {
    if (!existsSync(opt))
      throw new UserError(
        `--weights '${opt}' does not exist: pass the path of ${INCEPTION_WEIGHTS.file} or of a safetensors copy`,
      );
    return opt;
  }
  const cached = cachedWeightsPath();
  if (existsSync(cached)) return cached;
  throw new UserError(
    `the FID Inception weights are not in the cache (${cached}): run \`fpdm-exp weights fetch inception\`, or ${manualHint(INCEPTION_WEIGHTS, cached)}`,
  );
}

export interface FetchOptions {
  /** where to write (default: the cache path) */
  dest?: string;
  /** override the source (a mirror; tests use a local server) */
  url?: string;
  /** override the expected hash prefix (tests) */
  sha256Prefix?: string;
  /** abort when no response headers arrive within this many ms (default 20000) */
  connectTimeoutMs?: number;
  onProgress?: (bytes: number, total: number | undefined) => void;
}

export interface FetchResult {
  path: string;
  sha256: string;
  /** 'present': already there and verified; 'downloaded'; 'resumed': continued a .part file */
  status: 'present' | 'downloaded' | 'resumed';
  bytes: number;
}

function fileSize(p: string): number {
  try {
    return statSync(p).size;
  } catch {
    return 0;
  }
}

/** Downloads (or verifies) a weights file; see the file header for the protocol. */
export async function fetchWeights(
  spec: WeightsSpec = INCEPTION_WEIGHTS,
  opts: FetchOptions = {},
): Promise<FetchResult> {
  const dest = opts.dest ?? cachedWeightsPath(spec);
  const url = opts.url ?? spec.url;
  const prefix = (opts.sha256Prefix ?? spec.sha256Prefix).toLowerCase();
  mkdirSync(dirname(dest), { recursive: true });

  if (existsSync(dest)) {
    const sha = await sha256File(dest);
    if (sha.startsWith(prefix)) return { path: dest, sha256: sha, status: 'present', bytes: fileSize(dest) };
    rmSync(dest, { force: true });
    // fall through: a bad file in the cache is replaced
  }

  const part = `${dest}.part`;
  const have = fileSize(part);
  const headers: Record<string, string> = { 'user-agent': 'fpdm-exp' };
  if (have > 0) headers.range = `bytes=${have}-`;
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(new Error('no response')), opts.connectTimeoutMs ?? 20_000);
  let res: Response;
  try {
    res = await fetch(url, { headers, redirect: 'follow', signal: ctl.signal });
  } catch (e) {
    const cause = (e as { cause?: { code?: string; message?: string } }).cause;
    const why = cause?.code ?? cause?.message ?? (e as Error).message;
    throw new UserError(
      `cannot download the ${spec.name} weights from ${url} (${why}; this machine may be offline): ${manualHint(spec, dest)}`,
      { cause: e },
    );
  } finally {
    clearTimeout(timer);
  }

  let resumed = false;
  let append = false;
  if (res.status === 206 && have > 0) {
    resumed = true;
    append = true;
  } else if (res.status === 416 && have > 0) {
    // the range starts at or past the end: the .part file is probably complete; verify below
    await res.body?.cancel();
  } else if (res.ok) {
    append = false; // a full response (the server ignored the range): start over
  } else {
    await res.body?.cancel();
    throw new UserError(`downloading ${url} failed: HTTP ${res.status} ${res.statusText}: ${manualHint(spec, dest)}`);
  }

  if (res.status !== 416) {
    const total = Number(res.headers.get('content-length') ?? NaN);
    let done = append ? have : 0;
    const body = Readable.fromWeb(res.body as never);
    body.on('data', (chunk: Buffer) => {
      done += chunk.length;
      opts.onProgress?.(done, Number.isFinite(total) ? total + (append ? have : 0) : undefined);
    });
    try {
      await pipeline(body, createWriteStream(part, { flags: append ? 'a' : 'w' }));
    } catch (e) {
      throw new UserError(
        `the download of ${url} broke off after ${fileSize(part)} bytes (${(e as Error).message}); run the command again to resume from ${part}`,
        { cause: e },
      );
    }
  }

  const sha = await sha256File(part);
  if (!sha.startsWith(prefix)) {
    rmSync(part, { force: true });
    throw new UserError(
      `the downloaded file's SHA-256 ${sha} does not start with ${prefix}: it is not ${spec.file} and was removed; run the command again, or ${manualHint(spec, dest)}`,
    );
  }
  renameSync(part, dest);
  return { path: dest, sha256: sha, status: resumed ? 'resumed' : 'downloaded', bytes: fileSize(dest) };
}
