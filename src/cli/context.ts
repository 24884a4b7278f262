// What every command gets from the global options: the backend choice and output mode.
import { initBackend, type BackendChoice, type BackendInfo } from '../backends/index.js';

export interface GlobalOptions {
  backend: BackendChoice;
  quiet: boolean;
}

/** Initialises the globally chosen backend (commands that compute call this, others don't). */
export function useBackend(g: GlobalOptions): Promise<BackendInfo> {
  return initBackend(g.backend);
}
