// Exponential moving average of the weights, as the reference DiT training script does:
//   at start  ema ← θ                  (update_ema(ema, model, decay=0))
//   each step ema ← d·ema + (1 − d)·θ  (d = 0.9999 in the reference)
// The EMA copy is a set of tf.Variables with the same names as the model's parameters; it is what
// sampling uses, and it is saved in checkpoints as `ema.<name>`.
import * as tf from '@tensorflow/tfjs-core';
import { f32, toFloat32, type TensorMap } from '../io/tensor.js';
import { UserError } from '../util/errors.js';
import type { ParamMap } from './adamw.js';

let counter = 0;

export class Ema {
  readonly decay: number;
  private readonly shadow = new Map<string, tf.Variable>();

  /** Initialises the EMA copy to the current weights. */
  constructor(
    private readonly params: ParamMap,
    decay: number,
  ) {
    if (!(decay >= 0 && decay <= 1)) throw new UserError(`EMA decay must be in [0, 1], got ${decay}`);
    this.decay = decay;
    for (const [name, p] of params) {
      counter += 1;
      this.shadow.set(
        name,
        tf.tidy(() => tf.variable(p.clone(), false, `ema.${name}.${counter}`)),
      );
    }
  }

  /** ema ← d·ema + (1 − d)·θ for every parameter (or the named ones). */
  update(names?: Iterable<string>): void {
    const d = this.decay;
    for (const name of names ?? this.params.keys()) {
      const p = this.params.get(name)!;
      const s = this.shadow.get(name)!;
      tf.tidy(() => s.assign(tf.add(tf.mul(s, d), tf.mul(p, 1 - d))));
    }
  }

  /** The EMA weights (live variables; do not dispose). */
  weights(): ParamMap {
    return this.shadow;
  }

  /** Host copies named `ema.<param>`. */
  async exportState(): Promise<TensorMap> {
    const out: TensorMap = new Map();
    for (const [name, s] of this.shadow) out.set(`ema.${name}`, f32(s.shape, (await s.data()) as Float32Array));
    return out;
  }

  loadState(tensors: TensorMap): void {
    for (const [name, s] of this.shadow) {
      const h = tensors.get(`ema.${name}`);
      if (!h) throw new UserError(`checkpoint has no EMA tensor 'ema.${name}': it was written for a different model`);
      if (h.shape.join(',') !== s.shape.join(','))
        throw new UserError(`checkpoint tensor 'ema.${name}' has shape [${h.shape}] but the model needs [${s.shape}]`);
      tf.tidy(() => s.assign(tf.tensor(toFloat32(h), s.shape, 'float32')));
    }
  }

  dispose(): void {
    for (const s of this.shadow.values()) s.dispose();
    this.shadow.clear();
  }
}
