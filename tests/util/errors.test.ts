// The error taxonomy: a violated shape invariant of our own code is an InternalError (exit 1, a bug),
// a shape check of the user's data a UserError (exit 2); the CLI's one catch site maps them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EXIT, InternalError, UserError, invariant } from '../../src/util/errors.js';
import { assertShape, checkShape } from '../../src/util/shapes.js';

test('assertShape throws an InternalError (not a UserError) naming what and both shapes; checkShape a UserError', () => {
  assert.doesNotThrow(() => assertShape('x', [2, 4, 8, 8], [-1, 4, 8, 8]));
  assert.throws(
    () => assertShape('x', [2, 3, 8, 8], [-1, 4, 8, 8]),
    (e: unknown) =>
      e instanceof InternalError &&
      !(e instanceof UserError) &&
      e.exitCode === EXIT.bug &&
      e.message === 'x: has shape [2, 3, 8, 8], expected [*, 4, 8, 8]',
  );
  assert.throws(() => assertShape('t', [2], [2, 1]), InternalError);
  assert.doesNotThrow(() => checkShape('x', [2, 4], [2, -1]));
  assert.throws(
    () => checkShape('input x', [2, 3], [2, 4]),
    (e: unknown) =>
      e instanceof UserError && e.exitCode === EXIT.user && e.message === 'input x: has shape [2, 3], expected [2, 4]',
  );
});

test('invariant throws an InternalError only when the condition fails', () => {
  assert.doesNotThrow(() => invariant(1 + 1 === 2, 'arithmetic'));
  assert.throws(
    () => invariant(false, () => 'lazy message'),
    (e: unknown) => e instanceof InternalError && e.message === 'lazy message',
  );
});
