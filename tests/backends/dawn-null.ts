// Dawn's null backend with the mixed-precision features: a device that validates shaders and pipelines
// and runs nothing, for the suites that check our WGSL under Dawn's validator on any machine.
import { MIXED_FEATURES, type MixedAdapter } from '../../src/backends/webgpu/device.js';

export interface NullDevice {
  limits: Record<string, number>;
  createShaderModule(d: { code: string }): {
    getCompilationInfo(): Promise<{ messages: Array<{ type: string; message: string }> }>;
  };
  createComputePipeline(d: object): unknown;
  pushErrorScope(f: string): void;
  popErrorScope(): Promise<{ message: string } | null>;
}

/** Dawn instances created here, kept referenced for the life of the process (Dawn aborts if one goes first) */
const instances: object[] = [];

/** A device of Dawn's null backend, or why there is none (a reason to skip). */
export async function nullDevice(): Promise<NullDevice | string> {
  let mod: { create(flags: string[]): { requestAdapter(o?: object): Promise<MixedAdapter | null> } };
  try {
    mod = (await import('webgpu')) as unknown as typeof mod;
  } catch {
    return "the optional package 'webgpu' is not installed";
  }
  const gpu = mod.create(['backend=null', 'enable-dawn-features=allow_unsafe_apis']);
  instances.push(gpu);
  const adapter = await gpu.requestAdapter();
  if (!adapter) return "Dawn's null backend gives no adapter";
  const missing = MIXED_FEATURES.filter((f) => !adapter.features.has(f));
  if (missing.length > 0) return `Dawn's null backend lacks ${missing.join(', ')}`;
  return (await adapter.requestDevice({
    requiredFeatures: [...MIXED_FEATURES],
    requiredLimits: {
      maxComputeWorkgroupStorageSize: adapter.limits.maxComputeWorkgroupStorageSize!,
      maxComputeInvocationsPerWorkgroup: adapter.limits.maxComputeInvocationsPerWorkgroup!,
    },
  })) as unknown as NullDevice;
}

/** The errors of compiling `code` on `dev` and of making its compute pipeline (none: [] and undefined). */
export async function validate(dev: NullDevice, code: string): Promise<{ compile: string[]; pipeline?: string }> {
  const module = dev.createShaderModule({ code });
  const compile = (await module.getCompilationInfo()).messages.filter((m) => m.type === 'error');
  dev.pushErrorScope('validation');
  dev.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' } });
  return { compile: compile.map((m) => m.message), pipeline: (await dev.popErrorScope())?.message };
}
