// Minimal structural types for the WebGPU objects and the TF.js WebGPU backend internals that our raw
// dispatches use (the `webgpu` package and @tensorflow/tfjs-backend-webgpu provide the real ones; both
// are optional dependencies, so nothing here imports them), and the WebGPU constants we need.
import type * as tf from '@tensorflow/tfjs-core';

export interface GBuffer {
  size: number;
  usage: number;
  mapAsync(mode: number): Promise<void>;
  getMappedRange(): ArrayBuffer;
  unmap(): void;
  destroy(): void;
}
export interface GPass {
  setPipeline(p: unknown): void;
  setBindGroup(i: number, g: unknown): void;
  dispatchWorkgroups(x: number, y?: number, z?: number): void;
  end(): void;
}
export interface GEncoder {
  beginComputePass(d?: object): GPass;
  resolveQuerySet(q: unknown, first: number, count: number, dst: GBuffer, off: number): void;
  copyBufferToBuffer(a: GBuffer, ao: number, b: GBuffer, bo: number, size: number): void;
  finish(): unknown;
}
export interface GPipeline {
  getBindGroupLayout(i: number): unknown;
}
export interface GDevice {
  features: { has(f: string): boolean };
  createShaderModule(d: { code: string }): unknown;
  createComputePipeline(d: object): GPipeline;
  createBindGroup(d: object): unknown;
  createBuffer(d: { size: number; usage: number; mappedAtCreation?: boolean }): GBuffer;
  createCommandEncoder(): GEncoder;
  createQuerySet(d: { type: string; count: number }): { destroy(): void };
  queue: {
    writeBuffer(b: GBuffer, off: number, data: ArrayBufferView | ArrayBuffer): void;
    submit(c: unknown[]): void;
  };
}
export interface TensorData {
  /** the buffer's element type (TF.js's Cast int32 → float32 keeps an int32 buffer under a float32 tensor) */
  dtype: tf.DataType;
  resource?: unknown;
  values?: unknown;
  refCount: number;
}
/** The parts of TF.js 4.22's BufferManager (its buffer pool) we use. */
export interface BufferManagerLike {
  /** free buffers by `${size}_${usage}`; acquireBuffer takes the last one */
  freeBuffers: Map<string, GBuffer[]>;
  releaseBuffer(buffer: GBuffer, reuse?: boolean): void;
}

/** The parts of TF.js 4.22's WebGPUBackend we use (its fields are public in JavaScript). */
export interface WebGPUBackendLike {
  device: GDevice;
  bufferManager: BufferManagerLike;
  tensorMap: { get(id: object): TensorData };
  uploadToGPU(id: object): void;
  ensureCommandEncoderReady(): void;
  endComputePassEncoder(): void;
  submitQueue(): void;
  makeTensorInfo(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  commandEncoder: GEncoder | null;
  computePassEncoder: GPass | null;
  dispatchCountInPass: number;
  commandQueueOwnedIds: WeakSet<object>;
}

// WebGPU constants (fixed by the specification)
export const USAGE = {
  MAP_READ: 0x1,
  COPY_SRC: 0x4,
  COPY_DST: 0x8,
  UNIFORM: 0x40,
  STORAGE: 0x80,
  QUERY_RESOLVE: 0x200,
};
export const MAP_READ = 0x1;

/**
 * Small integer ids of GPU buffers (weakly held), for keying cached bind groups by the buffers they bind:
 * a buffer keeps its id for its life, and a new buffer never reuses an old one's.
 */
export class BufferIds {
  private readonly ids = new WeakMap<object, number>();
  private next = 1;

  of(b: GBuffer): number {
    let id = this.ids.get(b);
    if (id === undefined) {
      id = this.next++;
      this.ids.set(b, id);
    }
    return id;
  }
}
