// Shared set-up for the model tests: the tiny fixtures' configs, weights and inputs.
import { readFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs-core';
import { readSafetensors } from '../../src/io/safetensors.js';
import { getTensor, toFloat32, toFloat64, type TensorMap } from '../../src/io/tensor.js';
import { createModel, fromReferenceKwargs, type AnyModel, type ModelConfig } from '../../src/models/index.js';
import { Rng } from '../../src/util/rng.js';
import { fixture } from '../helpers.js';

export type TinyName = 'dit_tiny' | 'fpdm_tiny';

/** The reference keyword arguments of a tiny fixture model (fixtures.json). */
export function tinyKwargs(name: TinyName): Record<string, unknown> {
  const all = JSON.parse(readFileSync(fixture('fixtures.json'), 'utf8')) as Record<
    string,
    { config: Record<string, unknown> }
  >;
  return { ...all[name]!.config };
}

export function tinyConfig(name: TinyName, extra: Record<string, unknown> = {}): ModelConfig {
  return fromReferenceKwargs({ ...tinyKwargs(name), ...extra });
}

export function tinyIO(name: TinyName): TensorMap {
  return readSafetensors(fixture(`${name}.io.safetensors`)).tensors;
}

/** x, t, y tensors from an io map (x NCHW float32, t float32, y int32). */
export function inputsOf(
  io: TensorMap,
  xName = 'x',
  tName = 't',
  yName = 'y',
): { x: tf.Tensor4D; t: tf.Tensor1D; y: tf.Tensor1D } {
  const xh = getTensor(io, xName);
  return {
    x: tf.tensor4d(toFloat32(xh), xh.shape as [number, number, number, number]),
    t: tf.tensor1d(toFloat32(getTensor(io, tName))),
    y: tf.tensor1d(Int32Array.from(toFloat64(getTensor(io, yName))), 'int32'),
  };
}

export function expected(io: TensorMap, name: string): Float64Array {
  return toFloat64(getTensor(io, name));
}

/** A model whose every parameter is N(0, scale²) (the reference init zeroes adaLN and the final layer, which would hide bugs). */
export function randomModel(c: ModelConfig, seed: number, scale = 0.2): AnyModel {
  const m = createModel(c, seed);
  const rng = new Rng(`${seed}/randomize`);
  for (const v of m.params.values()) {
    const t = tf.tensor(
      Float32Array.from(rng.normals(v.size), (a) => a * scale),
      v.shape,
    );
    v.assign(t);
    t.dispose();
  }
  return m;
}
