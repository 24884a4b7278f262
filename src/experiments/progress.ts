// Progress for long phases (training, sampling, feature extraction): a cli-progress bar on a terminal,
// plain periodic lines on stderr otherwise (CI logs), nothing when quiet.
import cliProgress from 'cli-progress';
import { log } from '../util/log.js';

export interface Progress {
  update(done: number, info?: string): void;
  stop(): void;
}

export type ProgressMode = 'auto' | 'bar' | 'plain' | 'none';

/** A progress reporter for `total` units of `label`; plain lines at most every `everyMs` (default 10 s). */
export function startProgress(label: string, total: number, mode: ProgressMode = 'auto', everyMs = 10_000): Progress {
  const m = mode === 'auto' ? (process.stderr.isTTY ? 'bar' : 'plain') : mode;
  if (m === 'none') return { update() {}, stop() {} };
  if (m === 'bar') {
    const bar = new cliProgress.SingleBar(
      {
        format: `${label} [{bar}] {value}/{total} {info}`,
        stream: process.stderr,
        hideCursor: true,
        clearOnComplete: false,
      },
      cliProgress.Presets.shades_classic,
    );
    bar.start(total, 0, { info: '' });
    return { update: (done, info = '') => bar.update(done, { info }), stop: () => bar.stop() };
  }
  const started = Date.now();
  let last = 0;
  let lastDone = 0;
  return {
    update(done, info = '') {
      lastDone = done;
      const now = Date.now();
      if (now - last < everyMs && done < total) return;
      last = now;
      log(`${label}: ${done}/${total}${info ? ` ${info}` : ''} (${((now - started) / 1000).toFixed(0)} s)`);
    },
    stop() {
      if (lastDone < total) log(`${label}: stopped at ${lastDone}/${total}`);
    },
  };
}
