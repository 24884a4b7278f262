// What every command gets from the global options: the backend choice and output mode.
import { initBackend, type BackendChoice, type BackendInfo, type Precision } from '../backends/index.js';

export interface GlobalOptions {
  backend: BackendChoice;
  /**
   * the global --precision, undefined when not given: fp32 for train and sample; for run and plan, the
   * spec's precision (which a given --precision overrides, as --backend overrides the spec's backend)
   */
  precision?: Precision;
  quiet: boolean;
}

/** Initialises the globally chosen backend (commands that compute call this, others don't). */
export function useBackend(g: GlobalOptions): Promise<BackendInfo> {
  return initBackend(g.backend, { precision: g.precision ?? 'fp32' });
}
