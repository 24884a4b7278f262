// The error taxonomy. One catch site (src/cli/main.ts) turns these into exit codes:
//   UserError       exit 2: bad input (usage, spec, a missing/corrupt file); message says how to fix it
//   RegressionError exit 3: `fpdm-exp check` found a metric worse than its baseline
//   InternalError   exit 1: a violated invariant of our own code (a bug), printed with its stack
//   anything else   exit 1: a bug, printed with its stack
// Only a UserError is the user's doing: only it is stored as a run's failure (experiments/runner.ts);
// a bug stops the process and leaves the run to be resumed once the bug is fixed.
export const EXIT = { ok: 0, bug: 1, user: 2, regression: 3 } as const;

export class UserError extends Error {
  readonly exitCode = EXIT.user;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'UserError';
  }
}

export class RegressionError extends Error {
  readonly exitCode = EXIT.regression;
  constructor(message: string) {
    super(message);
    this.name = 'RegressionError';
  }
}

/** An invariant of our own code does not hold: a bug, never the user's input (exit 1 with the stack). */
export class InternalError extends Error {
  readonly exitCode = EXIT.bug;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'InternalError';
  }
}

/** Throws an InternalError unless `cond` holds (for invariants of our own code, not for input checks). */
export function invariant(cond: unknown, message: string | (() => string)): asserts cond {
  if (!cond) throw new InternalError(typeof message === 'function' ? message() : message);
}

/** Throws a UserError unless `cond` holds. */
export function ensure(cond: unknown, message: string | (() => string)): asserts cond {
  if (!cond) throw new UserError(typeof message === 'function' ? message() : message);
}

export function isNodeError(e: unknown, code?: string): e is NodeJS.ErrnoException {
  return e instanceof Error && 'code' in e && (code === undefined || (e as NodeJS.ErrnoException).code === code);
}
