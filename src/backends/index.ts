// Compute backends. All tensor code is written against @tensorflow/tfjs-core, so one model runs on
// every backend; this module finds which backends can run here, initialises one, and describes it
// (name, package version, device) for provenance.
//
//   wasm        @tensorflow/tfjs-backend-wasm: XNNPACK SIMD, the CPU default
//   cpu         @tensorflow/tfjs-backend-cpu: pure JS, slow, the correctness reference
//   webgpu      @tensorflow/tfjs-backend-webgpu over the `webgpu` package (Dawn), optional
//   tensorflow  @tensorflow/tfjs-node-gpu or @tensorflow/tfjs-node (libtensorflow), optional
//
// Precision: 'fp32' everywhere by default; 'mixed' (webgpu only) starts TF.js's WebGPU backend on a
// device of our own with f16 tensor-core matmuls available (src/backends/webgpu/device.ts), for the
// kernels that ask for them (src/backends/webgpu/gemm-mixed.ts); everything else stays float32.
import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cpus } from 'node:os';
import { UserError } from '../util/errors.js';
import { createMixedDevice, dawnFlags, describeMixedAdapter, mixedPrecisionSupport } from './webgpu/device.js';

export const BACKEND_NAMES = ['wasm', 'cpu', 'webgpu', 'tensorflow'] as const;
export type BackendName = (typeof BACKEND_NAMES)[number];
export type BackendChoice = BackendName | 'auto';
export const PRECISIONS = ['fp32', 'mixed'] as const;
/** fp32: float32 throughout; mixed: f16 matmul operands on tensor cores, f32 accumulation (webgpu only) */
export type Precision = (typeof PRECISIONS)[number];

/**
 * What --precision mixed puts on the f16 tensor cores (webgpu): said once, for the CLI's help and the
 * bench's report. Which products: those measured faster there (results/bench/NOTES.md §9–§10).
 */
export const MIXED_PRECISION_COVERS =
  "the DiT blocks' qkv, attention, output projection, fc1 and fc2 (GELU(h) kept in f16 between them) and FPDM's projection (fc1 as z·W1ᵀ plus the injection's part once per solve; fc2, GELU(p1) kept in f16 between them) forward; in the training step also the backward's attention, MLP and projection products (FPDM's fc1 weight gradient from [z, inj] written out), with dynamic loss scaling (PyTorch GradScaler's recipe) — f16 operands, f32 accumulation, f32 master weights; the adaLN and edge layers, losses, norms and the optimizer in fp32.";

export interface BackendInfo {
  name: BackendName;
  usable: boolean;
  /** why it cannot be used here, and what to do about it */
  reason?: string;
  /** npm package that provides it, and its installed version */
  package: string;
  version?: string;
  /** what it computes on: CPU model and threads, or the GPU adapter */
  device?: string;
  threads?: number;
  /** set only when the backend runs with precision 'mixed' (absent: fp32) */
  precision?: 'mixed';
}

const require = createRequire(import.meta.url);

function packageVersion(name: string): string | undefined {
  try {
    return (require(`${name}/package.json`) as { version: string }).version;
  } catch {
    return undefined;
  }
}

function cpuDevice(): string {
  const c = cpus();
  return `${c[0]?.model.trim() ?? 'unknown CPU'} (${c.length} cores)`;
}

interface GpuAdapterLike {
  info?: { vendor?: string; architecture?: string; device?: string; description?: string };
}
let webgpuAdapter: { adapter: GpuAdapterLike | null; error?: string } | undefined;

/** Creates the Dawn instance once and asks it for an adapter; sets navigator.gpu for the backend. */
async function findWebgpuAdapter(): Promise<{ adapter: GpuAdapterLike | null; error?: string }> {
  if (webgpuAdapter) return webgpuAdapter;
  try {
    const mod = (await import('webgpu')) as unknown as {
      create: (o: string[]) => { requestAdapter(o?: object): Promise<GpuAdapterLike | null> };
      globals: object;
    };
    Object.assign(globalThis, mod.globals);
    const gpu = mod.create(dawnFlags([]));
    const g = globalThis as unknown as { navigator?: { gpu?: unknown } };
    if (!g.navigator || typeof g.navigator !== 'object')
      Object.defineProperty(globalThis, 'navigator', { value: { gpu }, configurable: true, writable: true });
    else if (!g.navigator.gpu) Object.defineProperty(g.navigator, 'gpu', { value: gpu, configurable: true });
    const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
    webgpuAdapter = { adapter };
  } catch (e) {
    webgpuAdapter = { adapter: null, error: (e as Error).message };
  }
  return webgpuAdapter;
}

function describeAdapter(a: GpuAdapterLike): string {
  const i = a.info ?? {};
  return (
    [i.vendor, i.architecture, i.device, i.description].filter((s) => s && s.length > 0).join(' / ') ||
    'GPU adapter (no info)'
  );
}

async function probeOne(name: BackendName): Promise<BackendInfo> {
  switch (name) {
    case 'cpu':
      return {
        name,
        usable: true,
        package: '@tensorflow/tfjs-backend-cpu',
        version: packageVersion('@tensorflow/tfjs-backend-cpu'),
        device: cpuDevice(),
        threads: 1,
      };
    case 'wasm': {
      const version = packageVersion('@tensorflow/tfjs-backend-wasm');
      return version
        ? { name, usable: true, package: '@tensorflow/tfjs-backend-wasm', version, device: cpuDevice(), threads: 1 } // single-threaded under Node (see initBackend)
        : {
            name,
            usable: false,
            package: '@tensorflow/tfjs-backend-wasm',
            reason: 'package @tensorflow/tfjs-backend-wasm is not installed: run npm install',
          };
    }
    case 'webgpu': {
      const pkg = '@tensorflow/tfjs-backend-webgpu';
      if (!packageVersion('webgpu'))
        return {
          name,
          usable: false,
          package: pkg,
          version: packageVersion(pkg),
          reason: `optional package 'webgpu' (Dawn for Node) is not installed: npm install webgpu ${pkg}`,
        };
      const { adapter, error } = await findWebgpuAdapter();
      if (!adapter) {
        return {
          name,
          usable: false,
          package: pkg,
          version: packageVersion(pkg),
          reason: error
            ? `Dawn failed to start: ${error}`
            : "no GPU adapter found (Dawn needs a Vulkan, Metal or D3D12 driver; on Linux install libvulkan1 and the GPU vendor's Vulkan driver)",
        };
      }
      // The backend registers itself only if navigator.gpu exists when its module loads, so it is
      // imported after the adapter was found. (In a bundle its package.json is absent: the module
      // exports its version.)
      let version: string | undefined;
      try {
        const mod = (await import('@tensorflow/tfjs-backend-webgpu')) as { version_webgpu?: string; version?: string };
        version = packageVersion(pkg) ?? mod.version_webgpu ?? mod.version;
      } catch (e) {
        return {
          name,
          usable: false,
          package: pkg,
          reason: `optional package ${pkg} does not load (${(e as Error).message.split('\n')[0]}): npm install ${pkg} webgpu`,
        };
      }
      return { name, usable: true, package: pkg, version, device: describeAdapter(adapter) };
    }
    case 'tensorflow': {
      for (const pkg of ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node']) {
        const version = packageVersion(pkg);
        if (!version) continue;
        try {
          await import(pkg); // loads the native binding: fails when libtensorflow is missing
        } catch (e) {
          return {
            name,
            usable: false,
            package: pkg,
            version,
            reason: `${pkg} is installed but its native binding does not load (${(e as Error).message.split('\n')[0]}): reinstall it where its install can download libtensorflow`,
          };
        }
        return {
          name,
          usable: true,
          package: pkg,
          version,
          device: pkg.endsWith('gpu') ? 'libtensorflow (CUDA)' : `libtensorflow (${cpuDevice()})`,
        };
      }
      return {
        name,
        usable: false,
        package: '@tensorflow/tfjs-node',
        reason:
          'optional packages @tensorflow/tfjs-node(-gpu) are not installed: their install downloads libtensorflow, so run `npm install @tensorflow/tfjs-node` (or -gpu) on a machine that can reach that download',
      };
    }
  }
}

/**
 * Whether a GPU adapter can exist here, judged without starting Dawn (which prints a warning of its
 * own when it finds no Vulkan loader): on Linux, a GPU device node and a loadable libvulkan.so.1.
 * `auto` probes webgpu only when this holds; `--backend webgpu` and `backends` always probe.
 */
function gpuMayExist(): boolean {
  if (process.platform !== 'linux') return true;
  const dri = existsSync('/dev/dri') && readdirSync('/dev/dri').some((n) => n.startsWith('renderD'));
  if (!dri && !existsSync('/dev/nvidiactl')) return false;
  try {
    process.dlopen({ exports: {} }, 'libvulkan.so.1'); // a plain library loads, then is refused as an addon
  } catch (e) {
    return !/cannot open shared object/.test((e as Error).message);
  }
  return true;
}

/** Probes every known backend (no backend is initialised). */
export async function probeBackends(): Promise<BackendInfo[]> {
  return Promise.all(BACKEND_NAMES.map(probeOne));
}

let active: BackendInfo | undefined;

/** WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE set by initBackend('webgpu') (measured: see there). */
export const WEBGPU_SUBMIT_BATCH = 200;

/** The backend in use, for provenance. */
export function activeBackend(): BackendInfo {
  if (!active) throw new Error('no backend initialised: call initBackend() first');
  return active;
}

export function parseBackendChoice(s: string): BackendChoice {
  if (s === 'auto' || (BACKEND_NAMES as readonly string[]).includes(s)) return s as BackendChoice;
  throw new UserError(`--backend: '${s}' is not a backend; choose one of auto, ${BACKEND_NAMES.join(', ')}`);
}

/** TF.js's core module, with every kernel's gradient registered. */
async function loadTf(): Promise<typeof import('@tensorflow/tfjs-core')> {
  // TF.js loads here, not with this module, so that `backends` and `--help` start without it (~2 s)
  // a bundle (scripts/gpu/prepare.sh) hands tfjs-core's CommonJS module over as a default export
  const core = (await import('@tensorflow/tfjs-core')) as typeof import('@tensorflow/tfjs-core') & {
    default?: typeof import('@tensorflow/tfjs-core');
  };
  const tf = typeof core.env === 'function' ? core : core.default!;
  await import('@tensorflow/tfjs'); // registers every kernel's gradient (tfjs-core's CommonJS build has none)
  return tf;
}

export interface InitOptions {
  /** 'mixed' needs the webgpu backend on a GPU with f16 tensor cores; default 'fp32' */
  precision?: Precision;
  /** how the precision was asked for, for a refusal's message (default '--precision mixed') */
  asked?: string;
}

export function parsePrecision(s: string): Precision {
  if ((PRECISIONS as readonly string[]).includes(s)) return s as Precision;
  throw new UserError(`--precision: '${s}' is not a precision; choose one of ${PRECISIONS.join(', ')}`);
}

/**
 * Initialises and selects a backend. `auto` picks webgpu when a GPU adapter exists, then tensorflow
 * when installed, else wasm. An unusable explicit choice is a UserError saying why.
 */
export async function initBackend(choice: BackendChoice = 'auto', opts: InitOptions = {}): Promise<BackendInfo> {
  if (opts.precision === 'mixed') return initMixed(choice, opts.asked);
  let info: BackendInfo;
  if (choice === 'auto') {
    const webgpu = gpuMayExist() ? await probeOne('webgpu') : undefined;
    const tfnode = webgpu?.usable ? undefined : await probeOne('tensorflow');
    info = webgpu?.usable ? webgpu : tfnode?.usable ? tfnode : await probeOne('wasm');
  } else {
    info = await probeOne(choice);
  }
  if (!info.usable) throw new UserError(`backend '${info.name}' cannot be used here: ${info.reason}`);
  const tf = await loadTf();
  if (active?.name === info.name && tf.getBackend() === info.name) return active;

  switch (info.name) {
    case 'cpu':
      await import('@tensorflow/tfjs-backend-cpu');
      break;
    case 'wasm': {
      const mod = await import('@tensorflow/tfjs-backend-wasm');
      // a code-split bundle hands the CommonJS module over as the namespace's default export
      const wasm =
        typeof mod.setThreadsCount === 'function' ? mod : (mod as unknown as { default: typeof mod }).default;
      // Under Node the wasm backend runs single-threaded (its threaded build needs browser workers;
      // measured: no speed-up with more threads requested), so it is reported and set as 1 thread.
      // More cores are used by running more processes (run --shard, or workers on one database).
      wasm.setThreadsCount(info.threads ?? 1);
      break;
    }
    case 'webgpu':
      // probeOne already found the adapter and imported the backend. Dispatches per submitted command
      // buffer (TF.js default 15): 200 measured fastest for a DiT-S/2 training step on an H200 once the
      // fused kernels cut the step to ≈ 1,800 dispatches (results/bench/NOTES.md §4); FPDM-S/2 within noise
      tf.env().set('WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE', WEBGPU_SUBMIT_BATCH);
      break;
    case 'tensorflow':
      await import(info.package);
      break;
  }
  // PROD silences TF.js's console banners (e.g. "install the node backend") that would pollute
  // stderr of every command; it does not change numerics.
  tf.env().set('PROD', true);
  const ok = await tf.setBackend(info.name);
  if (!ok) throw new UserError(`backend '${info.name}' failed to initialise`);
  await tf.ready();
  active = info;
  return info;
}

/**
 * Throws the UserError saying why `precision` cannot run on backend `choice` here, if it cannot: 'mixed'
 * needs the webgpu backend (or auto) on a GPU with the f16 tensor-core features (mixedPrecisionSupport
 * names what is missing). `asked` is how the user asked for it (a flag or a spec field), for the message.
 * Initialises nothing, so a process that starts others at several precisions can check them all first.
 */
export async function requirePrecision(
  choice: BackendChoice,
  precision: Precision,
  asked = `--precision ${precision}`,
): Promise<void> {
  if (precision === 'fp32') return;
  if (choice !== 'auto' && choice !== 'webgpu')
    throw new UserError(
      `${asked} runs on the webgpu backend only (f16 tensor-core matmuls), not on '${choice}': use --backend webgpu, or --precision fp32`,
    );
  const support = await mixedPrecisionSupport();
  if (!support.ok) throw new UserError(`${asked} cannot be used here: ${support.reason}`);
}

/**
 * initBackend with precision 'mixed': TF.js's WebGPU backend on our own device with the f16
 * tensor-core features (webgpu/device.ts), registered in place of the backend's own factory. A GPU
 * without them is a UserError naming what is missing.
 */
async function initMixed(choice: BackendChoice, asked?: string): Promise<BackendInfo> {
  await requirePrecision(choice, 'mixed', asked);
  const pkg = '@tensorflow/tfjs-backend-webgpu';
  const tf = await loadTf();
  if (mixedBackend) {
    // initialised before (another backend may have been selected since): select it again
    if (tf.getBackend() !== 'webgpu' && !(await tf.setBackend('webgpu')))
      throw new UserError("backend 'webgpu' failed to initialise on the mixed-precision device");
    active = mixedBackend;
    return active;
  }
  if (active?.name === 'webgpu' && tf.getBackend() === 'webgpu') {
    throw new Error(
      "initBackend: the webgpu backend already runs at precision fp32 on TF.js's own device in this process; precision 'mixed' must be chosen when it is first initialised",
    );
  }
  // navigator.gpu is set by createMixedDevice before the backend module loads; when it loads, the
  // module registers a factory of its own (for TF.js's own device), which ours replaces
  const { device, adapter, info: mixed } = await createMixedDevice();
  let mod: {
    WebGPUBackend?: WebGPUBackendCtor;
    version_webgpu?: string;
    version?: string;
    default?: { WebGPUBackend?: WebGPUBackendCtor };
  };
  try {
    mod = (await import('@tensorflow/tfjs-backend-webgpu')) as typeof mod; // a literal, so that a bundle includes it
  } catch (e) {
    throw new UserError(
      `optional package ${pkg} does not load (${(e as Error).message.split('\n')[0]}): npm install ${pkg} webgpu`,
    );
  }
  const WebGPUBackend = mod.WebGPUBackend ?? mod.default?.WebGPUBackend;
  if (!WebGPUBackend) throw new Error(`${pkg} exports no WebGPUBackend`);
  if (tf.findBackendFactory('webgpu') !== null) tf.removeBackend('webgpu');
  tf.registerBackend(
    'webgpu',
    async () => new WebGPUBackend(device, adapter.info) as unknown as import('@tensorflow/tfjs-core').KernelBackend,
    3,
  );
  tf.env().set('WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE', WEBGPU_SUBMIT_BATCH);
  tf.env().set('PROD', true);
  if (!(await tf.setBackend('webgpu')))
    throw new UserError("backend 'webgpu' failed to initialise on the mixed-precision device");
  await tf.ready();
  const shapes = mixed.configs.map((c) => `M${c.M} N${c.N} K${c.K}`).join(', ');
  active = mixedBackend = {
    name: 'webgpu',
    usable: true,
    package: pkg,
    version: packageVersion(pkg) ?? mod.version_webgpu ?? mod.version,
    device: `${describeMixedAdapter(adapter)} (f16 subgroup matrices ${shapes})`,
    precision: 'mixed',
  };
  return active;
}

/** the webgpu backend on the mixed-precision device, once initialised */
let mixedBackend: BackendInfo | undefined;

/** TF.js 4.22's WebGPUBackend constructor: (device, adapterInfo) */
type WebGPUBackendCtor = new (device: unknown, adapterInfo: unknown) => object;
