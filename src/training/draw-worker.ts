// The worker thread of draw-ahead.ts: draws a step's timesteps and noise from a copy of the training
// generator's state and sends them back with the state after them (the noise's memory is transferred).
import { parentPort } from 'node:worker_threads';
import { Rng } from '../util/rng.js';
import { drawTimestepsAndNoise, type DrawReply, type DrawRequest } from './draw-ahead.js';

const port = parentPort;
if (!port) throw new Error('draw-worker.ts runs as a worker thread (draw-ahead.ts starts it)');
port.on('message', (req: DrawRequest) => {
  const rng = Rng.fromState(req.state);
  const d = drawTimestepsAndNoise(rng, req.n, req.count, req.numTimesteps);
  const reply: DrawReply = { id: req.id, ...d, state: rng.state() };
  port.postMessage(reply, [d.noise.buffer as ArrayBuffer]);
});
