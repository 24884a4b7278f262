// AdamW with decoupled weight decay, bias-corrected exactly as PyTorch's `torch.optim.AdamW`
// (non-amsgrad, non-fused, float32):
//   1. p ← p · (1 − lr·λ)                                      (decoupled weight decay)
//   2. m ← β1·m + (1 − β1)·g
//   3. v ← β2·v + (1 − β2)·g²
//   4. p ← p − (lr / (1 − β1^t)) · m / (√v / √(1 − β2^t) + ε)
// Optional extras (both off by default, as in the reference training script):
//   - linear warm-up: lr_t = lr · min(1, t / warmupSteps) for step t = 1, 2, …
//   - gradient clipping by the global L2 norm (as torch.nn.utils.clip_grad_norm_):
//     g ← g · min(1, maxNorm / (‖g‖ + 1e-6))
// The moments are tf.Variables named after the parameters, so they can be exported into a
// checkpoint (`opt.m.<name>`, `opt.v.<name>`) and restored bitwise.
import * as tf from '@tensorflow/tfjs-core';
import { f32, toFloat32, type TensorMap } from '../io/tensor.js';
import { UserError } from '../util/errors.js';
import { fusedOptimizerKernels } from '../backends/kernels.js';
import { stepValues, type FusedStepScalars } from '../backends/webgpu/optimizer.js';
import type { Ema } from './ema.js';

export interface AdamWConfig {
  /** peak learning rate (reference 1e-4) */
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  /** decoupled weight decay λ (reference 0) */
  weightDecay: number;
  /** linear warm-up length in steps; 0 = constant LR from the first step */
  warmupSteps: number;
  /** clip the global gradient L2 norm to this value; null = no clipping */
  clipGradNorm: number | null;
  /**
   * cosine decay: after warm-up the learning rate follows lr·½(1 + cos(π·p)), p = (t − warm-up) /
   * (decaySteps − warm-up), reaching 0 at step decaySteps (and staying there). Absent = constant.
   */
  decaySteps?: number;
}

export const ADAMW_DEFAULTS: AdamWConfig = {
  lr: 1e-4,
  beta1: 0.9,
  beta2: 0.999,
  eps: 1e-8,
  weightDecay: 0,
  warmupSteps: 0,
  clipGradNorm: null,
};

/** Named trainable parameters: state_dict name → variable (insertion order is the model's order). */
export type ParamMap = Map<string, tf.Variable>;

export interface AdamWStepInfo {
  /** learning rate used at this step (after warm-up) */
  lr: number;
  /** global gradient L2 norm before clipping */
  gradNorm: number;
}

/** Learning rate at optimizer step t (1-based): linear warm-up, then constant or cosine decay (decaySteps). */
export function learningRateAt(cfg: AdamWConfig, t: number): number {
  const warm = cfg.warmupSteps > 0 ? Math.min(1, t / cfg.warmupSteps) : 1;
  if (cfg.decaySteps === undefined || t <= cfg.warmupSteps) return cfg.lr * warm;
  const p = Math.min(1, (t - cfg.warmupSteps) / (cfg.decaySteps - cfg.warmupSteps));
  return cfg.lr * 0.5 * (1 + Math.cos(Math.PI * p));
}

export class AdamW {
  readonly cfg: AdamWConfig;
  /** number of completed optimizer steps (t in the bias corrections) */
  stepCount = 0;
  private readonly m = new Map<string, tf.Variable>();
  private readonly v = new Map<string, tf.Variable>();

  constructor(
    private readonly params: ParamMap,
    cfg: Partial<AdamWConfig> = {},
  ) {
    this.cfg = { ...ADAMW_DEFAULTS, ...cfg };
    const c = this.cfg;
    if (
      !(c.lr >= 0) ||
      !(c.eps >= 0) ||
      !(c.weightDecay >= 0) ||
      !(c.beta1 >= 0 && c.beta1 < 1) ||
      !(c.beta2 >= 0 && c.beta2 < 1)
    ) {
      throw new UserError(
        `AdamW: invalid settings ${JSON.stringify(c)}: lr, eps, weight decay must be >= 0 and betas in [0, 1)`,
      );
    }
    if (c.clipGradNorm !== null && !(c.clipGradNorm > 0))
      throw new UserError(`AdamW: clipGradNorm must be > 0 or null, got ${c.clipGradNorm}`);
    if (c.decaySteps !== undefined && !(Number.isInteger(c.decaySteps) && c.decaySteps > c.warmupSteps)) {
      throw new UserError(
        `AdamW: decaySteps must be an integer above the warm-up steps (${c.warmupSteps}), got ${c.decaySteps}`,
      );
    }
    for (const [name, p] of params) {
      // tidy disposes the zeros tensor once the variable holds its own reference to the data
      this.m.set(
        name,
        tf.tidy(() => tf.variable(tf.zerosLike(p), false, `opt.m.${name}.${uid()}`)),
      );
      this.v.set(
        name,
        tf.tidy(() => tf.variable(tf.zerosLike(p), false, `opt.v.${name}.${uid()}`)),
      );
    }
  }

  /**
   * Applies one update. `grads` maps parameter names to gradients; a parameter without a gradient
   * is skipped entirely (as PyTorch skips parameters whose .grad is None). Gradients are not disposed.
   * (The training loop uses the two halves, `gradNormTensor` and `applyUpdate`, to read the norm
   * together with the loss and to update the EMA copy in the same pass.)
   */
  async step(grads: Record<string, tf.Tensor> | Map<string, tf.Tensor>): Promise<AdamWStepInfo> {
    const g = grads instanceof Map ? grads : new Map(Object.entries(grads));
    const normT = this.gradNormTensor(g);
    const gradNorm = normT ? (await normT.data())[0]! : 0;
    normT?.dispose();
    return this.applyUpdate(g, gradNorm);
  }

  /** Names of the parameters that have a gradient, in the model's order. */
  private present(g: Map<string, tf.Tensor>): string[] {
    return [...this.params.keys()].filter((n) => g.has(n));
  }

  /**
   * The global gradient L2 norm as a [1] tensor on the device (null when no parameter has a
   * gradient); the caller reads it (asynchronously: webgpu cannot read synchronously under Node)
   * and disposes it. On webgpu with fused kernels: one dispatch per gradient plus one reduction.
   * `lossScale` S: the gradients are S·g (loss scaling) and the norm returned is ‖g‖ (S a power of 2,
   * so dividing by it is exact).
   */
  gradNormTensor(g: Map<string, tf.Tensor>, lossScale = 1): tf.Tensor | null {
    const names = this.present(g);
    if (names.length === 0) return null;
    const fused = fusedOptimizerKernels();
    if (fused)
      return fused.globalNorm(
        names.map((n) => g.get(n)!),
        names.map((n) => this.params.get(n)!.size),
        1 / lossScale,
      );
    // a chain of adds, not tf.addN: webgpu's addN kernel exceeds the 8 storage buffers per stage with
    // dozens of inputs; the running sum is advanced one parameter at a time, so no squared copy of the
    // gradients outlives its own term
    let acc: tf.Tensor = tf.scalar(0);
    for (const n of names) {
      const next = tf.tidy(() => tf.add(acc, tf.sum(tf.square(g.get(n)!))));
      acc.dispose();
      acc = next;
    }
    const norm = tf.tidy(() => tf.reshape(tf.mul(tf.sqrt(acc), 1 / lossScale), [1]));
    acc.dispose();
    return norm;
  }

  /**
   * The update for one step given the global gradient norm read from `gradNormTensor`; with `ema`
   * the EMA copy is updated after it (ema ← d·ema + (1 − d)·θ), in the same dispatch on webgpu.
   * `lossScale` S: the gradients are S·g (loss scaling; `gradNorm` is ‖g‖) and are divided by S first.
   */
  applyUpdate(g: Map<string, tf.Tensor>, gradNorm: number, ema?: Ema, lossScale = 1): AdamWStepInfo {
    const c = this.cfg;
    this.stepCount += 1;
    const t = this.stepCount;
    const lr = learningRateAt(c, t);
    const names = this.present(g);
    const clipCoef = c.clipGradNorm !== null ? Math.min(1, c.clipGradNorm / (gradNorm + 1e-6)) : 1;
    const bc2Sqrt = Math.sqrt(1 - c.beta2 ** t);
    const stepSize = lr / (1 - c.beta1 ** t);
    if (ema && names.length > 0 && this.fusedApply(g, names, t, ema, { norm: gradNorm }, lossScale)) {
      // parameters without a gradient are not updated, but their EMA still moves towards them
      if (names.length < this.params.size) ema.update([...this.params.keys()].filter((n) => !g.has(n)));
      return { lr, gradNorm };
    }
    for (const name of names) {
      const p = this.params.get(name)!;
      const m = this.m.get(name)!;
      const v = this.v.get(name)!;
      tf.tidy(() => {
        let grad = g.get(name)!;
        if (lossScale !== 1) grad = tf.mul(grad, 1 / lossScale);
        if (clipCoef < 1) grad = tf.mul(grad, clipCoef);
        const pDecayed = c.weightDecay > 0 ? tf.mul(p, 1 - lr * c.weightDecay) : p; // step 1
        const mNew = tf.add(tf.mul(m, c.beta1), tf.mul(grad, 1 - c.beta1)); // step 2
        const vNew = tf.add(tf.mul(v, c.beta2), tf.mul(tf.square(grad), 1 - c.beta2)); // step 3
        const denom = tf.add(tf.div(tf.sqrt(vNew), bc2Sqrt), c.eps);
        const pNew = tf.sub(pDecayed, tf.mul(tf.div(mNew, denom), stepSize)); // step 4
        m.assign(mNew);
        v.assign(vNew);
        p.assign(pNew);
      });
    }
    ema?.update();
    return { lr, gradNorm };
  }

  /**
   * The fused update of step t on the device (webgpu with the fused kernels): false where those are
   * not used. status: [loss, ‖g‖, …] on the device, or the host's norm; lossScale as applyUpdate's.
   */
  private fusedApply(
    g: Map<string, tf.Tensor>,
    names: string[],
    t: number,
    ema: Ema,
    status: { tensor: tf.Tensor } | { norm: number },
    lossScale: number,
  ): boolean {
    const fused = fusedOptimizerKernels();
    if (!fused) return false;
    const c = this.cfg;
    const lr = learningRateAt(c, t);
    const shadow = ema.weights();
    fused.apply(
      names.map((name) => ({
        g: g.get(name)!,
        p: this.params.get(name)!,
        m: this.m.get(name)!,
        v: this.v.get(name)!,
        ema: shadow.get(name)!,
      })),
      {
        clip: 1, // computed on the device from the status's norm (maxNorm below)
        decay: 1 - lr * c.weightDecay,
        applyDecay: c.weightDecay > 0,
        beta1: c.beta1,
        beta2: c.beta2,
        bc2Sqrt: Math.sqrt(1 - c.beta2 ** t),
        eps: c.eps,
        stepSize: lr / (1 - c.beta1 ** t),
        emaDecay: ema.decay,
        gradScale: 1 / lossScale,
      },
      names.map((n) => this.params.get(n)!.size),
      status,
      c.clipGradNorm,
    );
    return true;
  }

  /**
   * The next step's update recorded on the device without reading anything back first, where the
   * fused kernels run (webgpu): the clipping coefficient comes from the norm in `status` ([loss, ‖g‖, …],
   * a device tensor), and the device leaves weights, moments and EMA unchanged when status's loss is not
   * finite. The step counter does not move until `commitStep()` (call it once the loss was read and is
   * finite). Returns null where this is not available (then read the norm and call applyUpdate).
   * `lossScale` S ≠ 1: the gradients are S·g (status's norm is ‖g‖), and the device leaves everything
   * unchanged when that norm is not finite too (an overflow; don't commit such a step).
   */
  recordUpdate(g: Map<string, tf.Tensor>, status: tf.Tensor, ema: Ema, lossScale = 1): { lr: number } | null {
    const names = this.present(g);
    if (names.length < this.params.size) return null;
    const t = this.stepCount + 1;
    if (!this.fusedApply(g, names, t, ema, { tensor: status }, lossScale)) return null;
    return { lr: learningRateAt(this.cfg, t) };
  }

  /** Counts the step whose update recordUpdate recorded (its loss was finite). */
  commitStep(): void {
    this.stepCount += 1;
  }

  /** Moments as host tensors named `opt.m.<param>` / `opt.v.<param>`, plus the step count. */
  async exportState(): Promise<{ tensors: TensorMap; stepCount: number }> {
    const tensors: TensorMap = new Map();
    for (const [name, m] of this.m) tensors.set(`opt.m.${name}`, f32(m.shape, (await m.data()) as Float32Array));
    for (const [name, v] of this.v) tensors.set(`opt.v.${name}`, f32(v.shape, (await v.data()) as Float32Array));
    return { tensors, stepCount: this.stepCount };
  }

  /** Restores moments exported by `exportState` (every parameter must be present, shapes equal). */
  loadState(tensors: TensorMap, stepCount: number): void {
    for (const [kind, vars] of [
      ['m', this.m],
      ['v', this.v],
    ] as const) {
      for (const [name, variable] of vars) {
        const key = `opt.${kind}.${name}`;
        const h = tensors.get(key);
        if (!h)
          throw new UserError(`checkpoint has no optimizer tensor '${key}': it was written for a different model`);
        if (h.shape.join(',') !== variable.shape.join(',')) {
          throw new UserError(
            `checkpoint tensor '${key}' has shape [${h.shape}] but the model needs [${variable.shape}]`,
          );
        }
        tf.tidy(() => variable.assign(tf.tensor(toFloat32(h), variable.shape, 'float32')));
      }
    }
    this.stepCount = stepCount;
  }

  dispose(): void {
    for (const x of this.m.values()) x.dispose();
    for (const x of this.v.values()) x.dispose();
    this.m.clear();
    this.v.clear();
  }
}

/**
 * One parameter's AdamW + EMA update in float32 on the host, operation for operation as the fused
 * webgpu kernel (src/backends/webgpu/optimizer.ts) and the TF.js op sequence above compute it
 * (every intermediate rounded to float32). Rewrites p, m, v, ema in place. For tests of the kernel's math.
 */
export function adamwEmaReference(
  a: { g: Float32Array; p: Float32Array; m: Float32Array; v: Float32Array; ema: Float32Array },
  s: FusedStepScalars,
): void {
  const f = Math.fround;
  const [clip, decay, b1, omb1, b2, omb2, bc2, eps, stepSize, d, omd, gs] = stepValues(s).map(f) as number[];
  for (let i = 0; i < a.p.length; i++) {
    let grad = f(a.g[i]! * gs!);
    if (s.clip < 1) grad = f(grad * clip!);
    let pd = a.p[i]!;
    if (s.applyDecay) pd = f(pd * decay!);
    const mN = f(f(a.m[i]! * b1!) + f(grad * omb1!));
    const vN = f(f(a.v[i]! * b2!) + f(f(grad * grad) * omb2!));
    const denom = f(f(f(Math.sqrt(vN)) / bc2!) + eps!);
    const pN = f(pd - f(f(mN / denom) * stepSize!));
    a.m[i] = mN;
    a.v[i] = vN;
    a.p[i] = pN;
    a.ema[i] = f(f(a.ema[i]! * d!) + f(pN * omd!));
  }
}

let counter = 0;
/** TF.js variable names must be globally unique; several optimizers may coexist (tests, runner). */
function uid(): string {
  counter += 1;
  return `${counter}`;
}
