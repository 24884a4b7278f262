// Spec validation: the tiny spec and the shipped specs validate; every malformed spec of the corpus is
// a UserError naming the offending path and line.
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadSpec, parseSpec } from '../../src/experiments/spec.js';
import { UserError } from '../../src/util/errors.js';
import { ROOT } from '../cli.js';
import { MALFORMED, TINY_SPEC, edit, lineOfMarker } from './specs.js';

test('the tiny spec validates with defaults filled in', () => {
  const s = parseSpec(TINY_SPEC);
  assert.equal(s.variants.length, 1);
  assert.equal(s.base.training.ema, 0.9999);
  assert.equal(s.base.sampling.sampler, 'ddpm');
  assert.deepEqual(s.base.models.fpdm!.kind === 'fpdm' && s.base.models.fpdm!.sjfb, {
    noGrad: [0, 1],
    withGrad: [1, 2],
  });
});

test(`a corpus of ${MALFORMED.length} malformed specs: each names its path and line`, () => {
  assert.ok(MALFORMED.length >= 25);
  for (const c of MALFORMED) {
    let err: unknown;
    try {
      parseSpec(c.text, 'bad.yaml');
    } catch (e) {
      err = e;
    }
    assert.ok(err instanceof UserError, `${c.id}: expected a UserError, got ${String(err)}`);
    const msg = err.message;
    assert.ok(msg.includes(c.path), `${c.id}: message does not name '${c.path}':\n${msg}`);
    if (c.lineOf !== undefined) {
      const line = lineOfMarker(c.text, c.lineOf);
      assert.match(
        msg,
        new RegExp(`bad\\.yaml:${line}[: ]`),
        `${c.id}: message does not point at line ${line}:\n${msg}`,
      );
    }
  }
});

test('grid expands into the cross product, each point validated', () => {
  const text = edit(
    TINY_SPEC,
    'seeds: [0]',
    'seeds: [0]\ngrid:\n  training.steps: [2, 4, 6]\n  models.fpdm.pre: [0, 1]',
  );
  const s = parseSpec(text);
  assert.equal(s.variants.length, 6);
  const seen = s.variants.map(
    (v) => `${v.spec.training.steps}/${v.spec.models.fpdm!.kind === 'fpdm' ? v.spec.models.fpdm!.pre : -1}`,
  );
  assert.deepEqual(new Set(seen).size, 6);
  for (const v of s.variants) assert.deepEqual(v.spec.grid, {});
});

test('a grid point that breaks a cross-field rule names the grid entry', () => {
  const text = edit(TINY_SPEC, 'seeds: [0]', 'seeds: [0]\ngrid:\n  models.fpdm.post: [1, 2]');
  assert.throws(
    () => parseSpec(text, 'g.yaml'),
    (e: Error) =>
      e instanceof UserError && /models\.fpdm\.pre/.test(e.message) && /models\.fpdm\.post=2/.test(e.message),
  );
});

test('every shipped spec in experiments/ validates', () => {
  const dir = join(ROOT, 'experiments');
  const files = readdirSync(dir).filter((f) => f.endsWith('.yaml'));
  assert.ok(files.includes('quickstart.yaml'), 'experiments/quickstart.yaml is missing');
  for (const f of files) {
    const s = loadSpec(join(dir, f));
    assert.ok(s.variants.length >= 1, f);
  }
});
