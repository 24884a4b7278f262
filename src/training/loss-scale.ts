// Dynamic loss scaling for mixed precision, PyTorch's GradScaler recipe (its defaults): the backward
// starts from S·∂loss/∂out so that small gradients stay inside f16's range where the backward rounds
// operands to f16 (src/backends/webgpu/train-step.ts); the optimizer divides by S. A step whose
// gradient norm is not finite overflowed: its update is skipped (the device leaves weights, moments and
// EMA unchanged; the optimizer's step count does not move) and S is halved. After `interval`
// consecutive good steps S is doubled. S stays a power of 2, so scaling and unscaling are exact.
//
// The loop stores the state in each checkpoint, so a resumed run continues with the same S.

export interface LossScaleState {
  /** the current S */
  scale: number;
  /** consecutive steps without overflow since S last changed */
  goodSteps: number;
}

/** PyTorch's GradScaler defaults: S₀ = 2^16, ×2 after 2000 good steps, ×½ on an overflow. */
export const LOSS_SCALE = { init: 2 ** 16, growth: 2, backoff: 0.5, interval: 2000 } as const;

export class LossScaler {
  private s: LossScaleState;

  constructor(state: LossScaleState = { scale: LOSS_SCALE.init, goodSteps: 0 }) {
    this.s = { ...state };
  }

  get scale(): number {
    return this.s.scale;
  }

  /**
   * After a step: `finite` whether its gradient norm was finite (its update applied). Returns the
   * outcome: 'applied', or 'skipped' (S halved).
   */
  update(finite: boolean): 'applied' | 'skipped' {
    if (!finite) {
      this.s = { scale: this.s.scale * LOSS_SCALE.backoff, goodSteps: 0 };
      return 'skipped';
    }
    const good = this.s.goodSteps + 1;
    this.s =
      good >= LOSS_SCALE.interval
        ? { scale: this.s.scale * LOSS_SCALE.growth, goodSteps: 0 }
        : { ...this.s, goodSteps: good };
    return 'applied';
  }

  state(): LossScaleState {
    return { ...this.s };
  }
}
