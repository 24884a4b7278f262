// The WebGPU device for `precision: 'mixed'`: matmul operands in f16 on the tensor cores (WGSL's
// `chromium_experimental_subgroup_matrix`), accumulation in f32 (gemm-mixed.ts). TF.js creates its own
// device without these features, so for mixed precision we create the Dawn instance (with the toggles
// that expose them), the adapter and the device ourselves, and hand the device to TF.js's
// WebGPUBackend (src/backends/index.ts initBackend).
//
//   toggles   allow_unsafe_apis (the experimental subgroup-matrix feature), vulkan_enable_f16_on_nvidia
//             (without it Dawn offers no `shader-f16`, hence no f16 configs, on NVIDIA's Vulkan driver)
//   features  shader-f16, subgroups, chromium-experimental-subgroup-matrix; timestamp-query when the
//             adapter has it (the bench's GPU timings)
//   configs   adapter.info.subgroupMatrixConfigs: the subgroup-matrix shapes the hardware multiplies;
//             we use those with f16 operands and an f32 result (M16 N16 K16, M16 N8 K16, M16 N8 K8 on
//             an H200; it has no f32, tf32 or bf16 configs)
//   limits    the adapter's maxStorageBuffersPerShaderStage (16 on the H200, against 8 by default), and
//             the limits TF.js requests for its own device, so its kernels run as they do there
import type { GDevice } from './types.js';

/** The Dawn instance flags of the mixed-precision device. */
export const MIXED_DAWN_FLAGS = ['enable-dawn-features=allow_unsafe_apis,vulkan_enable_f16_on_nvidia'];

/**
 * Dawn's toggles turned off on every device we create: `timestamp_quantization` (on by default) rounds
 * timestamp queries down to multiples of 65.5 µs, which the GPU timings (bench profiles, the gemm
 * micro-benchmark) showed as steps of 0.0655 ms on kernels of 0.3–0.7 ms.
 */
export const DISABLED_DAWN_TOGGLES = ['timestamp_quantization'];

/**
 * Dawn's instance flags with the toggles of the environment variable FPDM_DAWN_TOGGLES (comma-separated
 * Dawn toggle names, e.g. `disable_robustness,skip_validation`) added to its enabled features: a knob for
 * measuring what Dawn's safety work costs (the bench records the variable); and DISABLED_DAWN_TOGGLES off.
 */
export function dawnFlags(flags: readonly string[]): string[] {
  const extra = (process.env.FPDM_DAWN_TOGGLES ?? '')
    .split(',')
    .map((t) => t.trim())
    .filter((t) => t.length > 0);
  const off = `disable-dawn-features=${DISABLED_DAWN_TOGGLES.join(',')}`;
  if (extra.length === 0) return [...flags, off];
  const key = 'enable-dawn-features=';
  const enabled = flags.find((f) => f.startsWith(key));
  const toggles = [...(enabled ? enabled.slice(key.length).split(',') : []), ...extra];
  return [...flags.filter((f) => !f.startsWith(key)), `${key}${[...new Set(toggles)].join(',')}`, off];
}

/** The device features mixed precision needs. */
export const MIXED_FEATURES = ['shader-f16', 'subgroups', 'chromium-experimental-subgroup-matrix'] as const;

/** A subgroup-matrix shape with f16 operands and an f32 result: left M × K, right K × N, result M × N. */
export interface MmaShape {
  M: number;
  N: number;
  K: number;
}

/** What a mixed-precision kernel needs to know of the device. */
export interface MixedDeviceInfo {
  /** the f16 → f32 subgroup-matrix shapes, largest first */
  configs: MmaShape[];
  /** the adapter's largest subgroup size: a subgroup-matrix kernel's workgroup x is a multiple of it */
  subgroupSize: number;
  /** the adapter's maxComputeWorkgroupStorageSize and maxComputeInvocationsPerWorkgroup (the device is created with both) */
  maxWorkgroupBytes: number;
  maxThreads: number;
}

export type MixedSupport = ({ ok: true } & MixedDeviceInfo) | { ok: false; reason: string };

// ---- structural types of the `webgpu` package's objects that this file uses -----------------------------

interface SubgroupMatrixConfigLike {
  componentType: string;
  resultComponentType: string;
  M: number;
  N: number;
  K: number;
}
interface AdapterInfoLike {
  vendor?: string;
  architecture?: string;
  device?: string;
  description?: string;
  subgroupMaxSize?: number;
  subgroupMatrixConfigs?: Iterable<SubgroupMatrixConfigLike>;
}
export interface MixedAdapter {
  features: { has(f: string): boolean };
  limits: Record<string, number>;
  info: AdapterInfoLike;
  requestDevice(d: { requiredFeatures: string[]; requiredLimits: Record<string, number> }): Promise<GDevice>;
}
interface GpuLike {
  requestAdapter(o?: object): Promise<MixedAdapter | null>;
}
interface WebgpuModule {
  create: (flags: string[]) => GpuLike;
  globals: object;
}

/** The limits TF.js 4.22 requests for its own device (tfjs-backend-webgpu base.ts), at the adapter's values. */
const TFJS_LIMITS = [
  'maxComputeWorkgroupStorageSize',
  'maxComputeWorkgroupsPerDimension',
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxComputeWorkgroupSizeX',
  'maxComputeInvocationsPerWorkgroup',
];

let found: Promise<{ gpu: GpuLike | null; adapter: MixedAdapter | null; error?: string }> | undefined;

/** The Dawn instance with the mixed-precision toggles and its high-performance adapter (created once). */
function mixedAdapter(): Promise<{ gpu: GpuLike | null; adapter: MixedAdapter | null; error?: string }> {
  found ??= (async () => {
    let mod: WebgpuModule;
    try {
      mod = (await import('webgpu')) as unknown as WebgpuModule;
    } catch {
      return {
        gpu: null,
        adapter: null,
        error: "the optional package 'webgpu' (Dawn for Node) is not installed: npm install webgpu",
      };
    }
    try {
      Object.assign(globalThis, mod.globals);
      const gpu = mod.create(dawnFlags(MIXED_DAWN_FLAGS));
      return { gpu, adapter: await gpu.requestAdapter({ powerPreference: 'high-performance' }) };
    } catch (e) {
      return { gpu: null, adapter: null, error: `Dawn failed to start: ${(e as Error).message}` };
    }
  })();
  return found;
}

export function describeMixedAdapter(a: MixedAdapter): string {
  const i = a.info;
  return (
    [i.vendor, i.architecture, i.device, i.description].filter((s) => s && s.length > 0).join(' / ') ||
    'GPU adapter (no info)'
  );
}

/** The f16 → f32 subgroup-matrix shapes of an adapter, largest (M·N·K) first. */
export function f16Configs(a: MixedAdapter): MmaShape[] {
  const all = [...(a.info.subgroupMatrixConfigs ?? [])];
  return all
    .filter((c) => c.componentType === 'f16' && c.resultComponentType === 'f32')
    .map((c) => ({ M: c.M, N: c.N, K: c.K }))
    .sort((x, y) => y.M * y.N * y.K - x.M * x.N * x.K);
}

/** Why an adapter cannot run mixed precision, or null when it can. */
function unsupportedReason(a: MixedAdapter): string | null {
  const name = describeMixedAdapter(a);
  const missing = MIXED_FEATURES.filter((f) => !a.features.has(f));
  if (missing.length > 0)
    return `the GPU adapter (${name}) lacks the WebGPU feature${missing.length > 1 ? 's' : ''} ${missing.join(', ')} that f16 tensor-core matmuls need; use --precision fp32`;
  if (f16Configs(a).length === 0) {
    const have = [...(a.info.subgroupMatrixConfigs ?? [])].map(
      (c) => `${c.componentType}→${c.resultComponentType} M${c.M} N${c.N} K${c.K}`,
    );
    return `the GPU adapter (${name}) offers no subgroup-matrix configuration with f16 operands and an f32 result (it has: ${have.join(', ') || 'none'}); use --precision fp32`;
  }
  if (typeof a.info.subgroupMaxSize !== 'number' || a.info.subgroupMaxSize <= 0)
    return `the GPU adapter (${name}) reports no subgroupMaxSize, which a subgroup-matrix kernel's workgroup size depends on; use --precision fp32`;
  return null;
}

/**
 * Whether this machine's GPU can run mixed precision: the f16 → f32 subgroup-matrix configs and the
 * subgroup size when it can, else why not (the missing features, and what to use instead).
 */
export async function mixedPrecisionSupport(): Promise<MixedSupport> {
  const { adapter, error } = await mixedAdapter();
  if (!adapter)
    return {
      ok: false,
      reason: `${error ?? 'no GPU adapter found (Dawn needs a Vulkan, Metal or D3D12 driver)'}; use --precision fp32`,
    };
  const reason = unsupportedReason(adapter);
  if (reason !== null) return { ok: false, reason };
  return {
    ok: true,
    configs: f16Configs(adapter),
    subgroupSize: adapter.info.subgroupMaxSize!,
    maxWorkgroupBytes: adapter.limits.maxComputeWorkgroupStorageSize!,
    maxThreads: adapter.limits.maxComputeInvocationsPerWorkgroup!,
  };
}

const mixedDevices = new WeakMap<object, MixedDeviceInfo>();

/** The mixed-precision facts of a device created by createMixedDevice, or null for any other device. */
export function mixedDeviceInfo(device: object): MixedDeviceInfo | null {
  return mixedDevices.get(device) ?? null;
}

/**
 * Creates the mixed-precision device (the caller has checked mixedPrecisionSupport) and sets
 * navigator.gpu to its Dawn instance (TF.js's WebGPUBackend requires navigator.gpu to exist).
 */
export async function createMixedDevice(): Promise<{ device: GDevice; adapter: MixedAdapter; info: MixedDeviceInfo }> {
  const { gpu, adapter } = await mixedAdapter();
  const support = await mixedPrecisionSupport();
  if (!gpu || !adapter || !support.ok)
    throw new Error(`createMixedDevice: ${support.ok ? 'no adapter' : support.reason}`);
  const requiredFeatures: string[] = [...MIXED_FEATURES];
  if (adapter.features.has('timestamp-query')) requiredFeatures.push('timestamp-query');
  const requiredLimits: Record<string, number> = {};
  for (const k of [...TFJS_LIMITS, 'maxStorageBuffersPerShaderStage']) requiredLimits[k] = adapter.limits[k]!;
  const device = await adapter.requestDevice({ requiredFeatures, requiredLimits });
  const g = globalThis as unknown as { navigator?: { gpu?: unknown } };
  if (!g.navigator || typeof g.navigator !== 'object')
    Object.defineProperty(globalThis, 'navigator', { value: { gpu }, configurable: true, writable: true });
  else if (!g.navigator.gpu) Object.defineProperty(g.navigator, 'gpu', { value: gpu, configurable: true });
  const { configs, subgroupSize, maxWorkgroupBytes, maxThreads } = support;
  const info: MixedDeviceInfo = { configs, subgroupSize, maxWorkgroupBytes, maxThreads };
  mixedDevices.set(device, info);
  return { device, adapter, info };
}
