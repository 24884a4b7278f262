// The one place where backend-specific kernel choices are made. Model and training code asks here
// for a fused implementation and falls back to the portable TF.js op sequence when it gets null
// (wasm, cpu, tensorflow, or webgpu with the fused kernels switched off for a comparison).
import * as tf from '@tensorflow/tfjs-core';
import { webgpuOptimizerKernels, type FusedOptimizerKernels } from './webgpu/optimizer.js';

export interface KernelOptions {
  /** fused AdamW + EMA update (webgpu only); default on */
  fusedOptimizer: boolean;
}

const options: KernelOptions = { fusedOptimizer: true };

/** Switches kernel choices (the bench measures with and without); returns the previous options. */
export function setKernelOptions(o: Partial<KernelOptions>): KernelOptions {
  const prev = { ...options };
  Object.assign(options, o);
  return prev;
}

export function kernelOptions(): KernelOptions {
  return { ...options };
}

/** The fused optimizer kernels for the active backend, or null where the TF.js op sequence is used. */
export function fusedOptimizerKernels(): FusedOptimizerKernels | null {
  if (!options.fusedOptimizer || tf.getBackend() !== 'webgpu') return null;
  return webgpuOptimizerKernels();
}
