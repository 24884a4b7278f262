// Shape legend for the whole repository (comments like `// [N, T, D]` use it):
//   N batch, C channels, H/W height/width, P patch size, T tokens (= H·W/P²), D hidden size,
//   K attention heads, Dh head size (D/K), F feature size, S sampling steps.
// Images and latents are NCHW everywhere in this tool, as in PyTorch (files, fixtures, models,
// diffusion, data loaders); transformer activations are tokens [N, T, D]. Only code that calls TF.js
// convolutions (the Inception network) works in NHWC internally and converts at its entry.
import { InternalError, UserError } from './errors.js';

export type Shape = readonly number[];

export function numel(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function shapeStr(shape: Shape): string {
  return `[${shape.join(', ')}]`;
}

function shapeMatches(actual: Shape, expected: Shape): boolean {
  return actual.length === expected.length && expected.every((d, i) => d === -1 || d === actual[i]);
}

function shapeMessage(what: string, actual: Shape, expected: Shape): string {
  return `${what}: has shape ${shapeStr(actual)}, expected ${shapeStr(expected.map((d) => (d === -1 ? '*' : d)) as never)}`;
}

/**
 * Cheap shape invariant at public entry points of our own code (models, diffusion, metrics): a
 * mismatch is a bug in the caller, thrown as an InternalError naming `what`. `expected` may hold -1
 * (any size) for a dimension. Data from the user (files, flags) is checked with checkShape first.
 */
export function assertShape(what: string, actual: Shape, expected: Shape): void {
  if (!shapeMatches(actual, expected)) throw new InternalError(shapeMessage(what, actual, expected));
}

/** The same check for data the user supplied (a file, an input tensor): a mismatch is a UserError naming `what`. */
export function checkShape(what: string, actual: Shape, expected: Shape): void {
  if (!shapeMatches(actual, expected)) throw new UserError(shapeMessage(what, actual, expected));
}
