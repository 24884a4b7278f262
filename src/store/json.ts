// Canonical JSON (sorted keys, no whitespace) and SHA-256: how configs and tags are stored and keyed.
import { createHash } from 'node:crypto';

/**
 * JSON with object keys sorted recursively, so equal values give equal strings. `undefined` members
 * are dropped (as JSON.stringify does); non-finite numbers are refused because JSON cannot hold them.
 */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortKeys(value, '$'));
}

function sortKeys(v: unknown, path: string): unknown {
  if (typeof v === 'number' && !Number.isFinite(v)) throw new Error(`canonicalJson: non-finite number at ${path}`);
  if (v === null || typeof v !== 'object') return v;
  if (Array.isArray(v)) return v.map((x, i) => sortKeys(x, `${path}[${i}]`));
  if (typeof (v as { toJSON?: unknown }).toJSON === 'function')
    return sortKeys((v as { toJSON: () => unknown }).toJSON(), path);
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(v).sort()) {
    const x = (v as Record<string, unknown>)[k];
    if (x !== undefined) out[k] = sortKeys(x, `${path}.${k}`);
  }
  return out;
}

export function sha256Hex(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}
