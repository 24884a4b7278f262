import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { judge, readBaseline, type BaselineCheck } from '../../src/report/check.js';
import { UserError } from '../../src/util/errors.js';

const c = (over: Partial<BaselineCheck>): BaselineCheck => ({
  metric: 'fid',
  select: {},
  expected: 10,
  tolerance: { abs: 0.5 },
  better: 'lower',
  ...over,
});

test('judge: allowed = max(abs, rel·|expected|), direction-aware verdicts', () => {
  assert.deepEqual(judge(10.4, c({})), { delta: 10.4 - 10, allowed: 0.5, verdict: 'ok' });
  assert.equal(judge(10.6, c({})).verdict, 'regressed');
  assert.equal(judge(9.4, c({})).verdict, 'improved');
  assert.equal(judge(9.4, c({ better: 'higher' })).verdict, 'regressed');
  assert.equal(judge(10.6, c({ better: 'higher' })).verdict, 'improved');
  assert.equal(judge(9.4, c({ better: 'equal' })).verdict, 'regressed');
  assert.equal(judge(10.0, c({ better: 'equal', tolerance: { abs: 0 } })).verdict, 'ok');
  assert.equal(judge(10.9, c({ tolerance: { abs: 0.5, rel: 0.1 } })).allowed, 1);
  assert.equal(judge(10.9, c({ tolerance: { abs: 0.5, rel: 0.1 } })).verdict, 'ok');
  assert.equal(judge(11.1, c({ tolerance: { rel: 0.1 } })).verdict, 'regressed');
});

test('readBaseline: malformed files are UserErrors naming the offending key', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fpdm-baseline-'));
  const good = { metric: 'fid', select: { model: 'm' }, expected: 1, tolerance: { abs: 0.1 }, better: 'lower' };
  const cases: [string, unknown, RegExp][] = [
    ['no checks', {}, /checks: Required/],
    ['empty checks', { checks: [] }, /checks: Array must contain at least 1/],
    ['missing expected', { checks: [good, { ...good, expected: undefined }] }, /checks\[1\]\.expected: Required/],
    [
      'string expected',
      { checks: [{ ...good, expected: '1' }] },
      /checks\[0\]\.expected: Expected number, received string/,
    ],
    ['unknown key', { checks: [{ ...good, tolerence: 1 }] }, /checks\[0\]: Unrecognized key.*'tolerence'/],
    [
      'unknown selector key',
      { checks: [{ ...good, select: { modle: 'x' } }] },
      /checks\[0\]\.select: Unrecognized key.*'modle'/,
    ],
    ['no tolerance', { checks: [{ ...good, tolerance: {} }] }, /checks\[0\]\.tolerance: give abs and\/or rel/],
    ['negative tolerance', { checks: [{ ...good, tolerance: { rel: -1 } }] }, /checks\[0\]\.tolerance\.rel/],
    [
      'bad direction',
      { checks: [{ ...good, better: 'smaller' }] },
      /checks\[0\]\.better: Invalid enum value.*'smaller'/,
    ],
    ['bad kind', { checks: [{ ...good, select: { kind: 'eval' } }] }, /checks\[0\]\.select\.kind/],
    [
      'bad tag value',
      { checks: [{ ...good, select: { tags: { budget: [1] } } }] },
      /checks\[0\]\.select\.tags\.budget/,
    ],
  ];
  for (const [what, body, re] of cases) {
    const p = join(dir, `${what.replace(/ /g, '_')}.json`);
    writeFileSync(p, JSON.stringify(body));
    assert.throws(
      () => readBaseline(p),
      (e: unknown) => e instanceof UserError && re.test(e.message),
      what,
    );
  }
  writeFileSync(join(dir, 'bad.yaml'), 'checks:\n  - metric: fid\n    expected: [1\n');
  assert.throws(
    () => readBaseline(join(dir, 'bad.yaml')),
    (e: unknown) => e instanceof UserError && /not valid YAML/.test(e.message),
  );
  writeFileSync(join(dir, 'bad.json'), '{"checks": [');
  assert.throws(
    () => readBaseline(join(dir, 'bad.json')),
    (e: unknown) => e instanceof UserError && /not valid JSON/.test(e.message),
  );
  assert.throws(
    () => readBaseline(join(dir, 'absent.json')),
    (e: unknown) => e instanceof UserError && /does not exist/.test(e.message),
  );
  writeFileSync(
    join(dir, 'ok.yaml'),
    'checks:\n  - metric: fid\n    select: {model: m, tags: {budget: 10}}\n    expected: 1.5\n    tolerance: {rel: 0.1}\n    better: lower\n',
  );
  assert.equal(readBaseline(join(dir, 'ok.yaml')).baseline.checks[0]!.select.tags!.budget, 10);
});
