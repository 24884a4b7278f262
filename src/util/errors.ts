// The error taxonomy. One catch site (src/cli/main.ts) turns these into exit codes:
//   UserError       exit 2: bad input (usage, spec, a missing/corrupt file); message says how to fix it
//   RegressionError exit 3: `fpdm-exp check` found a metric worse than its baseline
//   anything else   exit 1: a bug, printed with its stack
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

/** Throws a UserError unless `cond` holds. */
export function ensure(cond: unknown, message: string | (() => string)): asserts cond {
  if (!cond) throw new UserError(typeof message === 'function' ? message() : message);
}

export function isNodeError(e: unknown, code?: string): e is NodeJS.ErrnoException {
  return e instanceof Error && 'code' in e && (code === undefined || (e as NodeJS.ErrnoException).code === code);
}
