// Child process for the concurrent-writers test: claims every run key it can, writes metrics,
// completes the run, and prints the keys it claimed as JSON on stdout.
import { existsSync, writeFileSync } from 'node:fs';
import { openStore, sha256Hex } from '../../src/store/index.js';

const [dbPath, nStr, label] = process.argv.slice(2);
const spin = (ms: number) => {
  const end = Date.now() + ms;
  while (Date.now() < end);
};
// start barrier: the two processes' start-up times differ by more than a whole task takes, so each
// says it is ready and waits for the test's go before it opens (and races to create) the database
writeFileSync(`${dbPath}.ready-${label}`, '');
while (!existsSync(`${dbPath}.go`)) spin(1);
const store = openStore(dbPath!);
const claimed: string[] = [];
for (let i = 0; i < Number(nStr); i++) {
  const key = sha256Hex(`run-${i}`);
  const c = store.claimRun({
    key,
    experiment: 'conc',
    kind: 'sample',
    model: i % 2 ? 'DiT' : 'FPDM',
    seed: i,
    config: { i },
  });
  if (c.outcome !== 'claimed') continue;
  claimed.push(key);
  spin(2); // hold the run a moment so the other process meets it running
  store.addMetrics(
    c.run.id,
    Array.from({ length: 20 }, (_, s) => ({
      name: 'train_loss',
      value: i + s / 100,
      step: s,
      tags: { worker: label! },
    })),
  );
  store.completeRun(c.run.id, { metrics: [{ name: 'fid', value: i }] });
}
store.close();
process.stdout.write(JSON.stringify(claimed));
