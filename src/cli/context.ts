// What every command gets from the global options: the backend choice and output mode.
import { initBackend, type BackendChoice, type BackendInfo, type Precision } from '../backends/index.js';

export interface GlobalOptions {
  backend: BackendChoice;
  /** 'mixed': the webgpu backend on the f16 tensor-core device (default fp32) */
  precision?: Precision;
  quiet: boolean;
}

/** Initialises the globally chosen backend (commands that compute call this, others don't). */
export function useBackend(g: GlobalOptions): Promise<BackendInfo> {
  return initBackend(g.backend, { precision: g.precision ?? 'fp32' });
}
