// The command registry: one plain list. Each command module exports `register(program, globals)`.
import type { Command } from 'commander';
import type { GlobalOptions } from '../context.js';
import * as backends from './backends.js';
import * as plan from './plan.js';
import * as runCmd from './run.js';
import * as collect from './collect.js';
import * as inspect from './inspect.js';
import * as models from './models.js';
import * as forward from './forward.js';
import * as report from './report.js';
import * as check from './check.js';
import * as train from './train.js';
import * as sample from './sample.js';
import * as data from './data.js';
import * as fidCmd from './fid.js';
import * as kidCmd from './kid.js';
import * as prdcCmd from './prdc.js';
import * as isCmd from './is.js';
import * as featuresCmd from './features.js';
import * as weightsCmd from './weights.js';
import * as vaeCmd from './vae.js';
import * as latentsCmd from './latents.js';

export type Register = (program: Command, globals: () => GlobalOptions) => void;

export const COMMANDS: Register[] = [
  backends.register,
  plan.register,
  runCmd.register,
  collect.register,
  inspect.register,
  models.register,
  forward.register,
  report.register,
  check.register,
  train.register,
  sample.register,
  data.register,
  fidCmd.register,
  kidCmd.register,
  prdcCmd.register,
  isCmd.register,
  featuresCmd.register,
  weightsCmd.register,
  vaeCmd.register,
  latentsCmd.register,
];
