// Direct dispatch on the webgpu backend's own device: our WGSL compute pipelines recorded straight
// into TF.js's command stream, without TF.js's per-kernel bookkeeping (≈ 130–180 µs of host time per
// TF.js kernel on the GPU machine, against ≈ 5 µs for a dispatch whose bind group already exists).
//
//   pipelines    compiled once per key (shapes are baked into the WGSL, so no uniforms at all)
//   bind groups  cached by (pipeline, the exact GPU buffers bound); TF.js's buffer pool hands the same
//                buffers back step after step (orderFreeBuffers), so a training loop hits the cache
//   scratch      intermediates that no caller sees live in buffers owned here (one per role and
//                size), so their bind groups never change
//   ordering     dispatches go into TF.js's current compute pass, in program order with its own
//                kernels; the tensors bound are marked as used by the pending command buffer, so TF.js
//                defers releasing (and reusing) their buffers until it is submitted, exactly as for its
//                own kernels; the pass is submitted by TF.js's own submit-batch rule
//   profiling    while `timer` is set (the bench's profiled step), each dispatch gets its own pass with
//                timestamp queries; its kernel name and GPU milliseconds are pushed to `timer`
import * as tf from '@tensorflow/tfjs-core';
import { mixedDeviceInfo } from './device.js';
import {
  BufferIds,
  MAP_READ,
  USAGE,
  type BufferManagerLike,
  type GBuffer,
  type GDevice,
  type GPipeline,
  type WebGPUBackendLike,
} from './types.js';

/** the largest workgroup count per dimension WebGPU guarantees */
export const MAX_GROUPS = 65535;

/** A compiled pipeline, its bind group layout (asked for once) and its identity for the bind-group cache. */
export interface Kernel {
  id: number;
  key: string;
  pipeline: GPipeline;
  layout: unknown;
}

/** One dispatch: a kernel, the buffers at bindings 0.., and the workgroup counts. */
export interface Dispatch {
  kernel: Kernel;
  buffers: GBuffer[];
  groups: [number, number, number];
}

/** A 1-D count of workgroups laid out in 2-D when it exceeds the per-dimension limit. */
export function groups2d(n: number): [number, number, number] {
  if (n <= MAX_GROUPS) return [n, 1, 1];
  const x = MAX_GROUPS;
  return [x, Math.ceil(n / x), 1];
}

const ordered = new WeakSet<object>();

/**
 * Makes TF.js's buffer pool hand out its free buffers of a size in a fixed order: each free list is
 * kept sorted by the buffers' ids (`ids`), so acquireBuffer (which takes a list's last buffer) takes the
 * free buffer of the lowest id. A training step acquires and releases its tensors in the same order
 * every step, so after a step or two each tensor gets the buffer it got the step before (a tensor that
 * outlives its step alternates between two), and the bind groups of every dispatch are found in the
 * cache. With the pool's own order (last released,
 * first taken) a step permutes the buffers of a size among the tensors of that size, and a permutation
 * of hundreds of same-sized buffers repeats only after many steps: measured on SwiftShader, a DiT-S/2
 * step (depth 12, 466 direct dispatches) created 490, 244, 215, … 181 bind groups at steps 2, 3, 4, … 10
 * with the pool's order, and 389, 17, 1, 1, … with this one (the 1: a TF.js kernel's). Which buffer
 * holds a tensor changes nothing that is computed. Installed once per buffer manager.
 */
export function orderFreeBuffers(manager: BufferManagerLike, ids: BufferIds): void {
  if (ordered.has(manager)) return;
  ordered.add(manager);
  const release = manager.releaseBuffer.bind(manager);
  manager.releaseBuffer = (buffer: GBuffer, reuse = true): void => {
    release(buffer, reuse);
    // the pool's key (tfjs-backend-webgpu getBufferKey)
    const list = reuse ? manager.freeBuffers.get(`${buffer.size}_${buffer.usage}`) : undefined;
    if (!list || list[list.length - 1] !== buffer) return;
    // binary search for its place in the list (ids descending, the last free buffer the lowest)
    const id = ids.of(buffer);
    let lo = 0;
    let hi = list.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (ids.of(list[mid]!) > id) lo = mid + 1;
      else hi = mid;
    }
    if (lo < list.length - 1) {
      list.pop();
      list.splice(lo, 0, buffer);
    }
  };
}

/**
 * Dispatches in the first command buffer submitted after a training step's start (RawKernels.rampSubmits),
 * from the environment variable FPDM_SUBMIT_RAMP (a positive integer; unset, empty or 0: off). Each later
 * command buffer of the step holds twice as many as the one before, up to TF.js's
 * WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE (200 here): the device starts on the step's first blocks while the
 * host records the rest, instead of waiting for a first batch of 200 dispatches. Off, the step submits
 * after its embedders and its first block, then every 200 dispatches. Submitting changes when the device
 * starts, not what it computes. The bench records the variable.
 */
export function submitRampDefault(): number {
  const v = Number(process.env.FPDM_SUBMIT_RAMP ?? '');
  return Number.isInteger(v) && v > 0 ? v : 0;
}

export class RawKernels {
  private readonly kernels = new Map<string, Kernel>();
  private readonly bufferIds = new BufferIds();
  private readonly binds = new Map<string, unknown>();
  private readonly scratchBuffers = new Map<string, GBuffer>();
  private readonly timestamps: boolean;
  /** raw dispatches, bind groups created and reused (for the bench's per-step profile) */
  readonly counters = { dispatches: 0, bindGroupsCreated: 0, bindGroupsReused: 0 };
  /** dispatches after which run() submits while a step's submits ramp up (rampSubmits), else Infinity */
  private submitLimit = Infinity;
  /** while set, each dispatch runs in its own timed pass; its kernel (the key before ':') and GPU milliseconds are pushed here */
  timer: Array<{ name: string; ms: Promise<number> }> | null = null;

  constructor(private readonly backend: WebGPUBackendLike) {
    this.timestamps = backend.device.features.has('timestamp-query');
    orderFreeBuffers(backend.bufferManager, this.bufferIds);
  }

  /**
   * The precision of the forward products that take it (the DiT block's qkv, attention — one fused kernel
   * where the device has its tiles, attention.ts —, proj, fc1 and fc2; FPDM's projection): 'mixed' (f16
   * operands on tensor cores, f32 accumulation) on the mixed-precision device, else 'fp32'. Which products
   * take it was measured in the model on the H200 (results/bench/NOTES.md §9–§16). The backward's large products take it too, but only in the training step with loss
   * scaling (train-step.ts: without it their gradient operands would fall below f16's range).
   */
  get forwardPrecision(): 'fp32' | 'mixed' {
    return mixedDeviceInfo(this.backend.device) ? 'mixed' : 'fp32';
  }

  get device(): GDevice {
    return this.backend.device;
  }

  /** The pipeline for `key`, compiled from `code()` the first time. */
  kernel(key: string, code: () => string): Kernel {
    let k = this.kernels.get(key);
    if (!k) {
      const d = this.backend.device;
      const pipeline = d.createComputePipeline({
        layout: 'auto',
        compute: { module: d.createShaderModule({ code: code() }), entryPoint: 'main' },
      });
      k = { id: this.kernels.size + 1, key, pipeline, layout: pipeline.getBindGroupLayout(0) };
      this.kernels.set(key, k);
    }
    return k;
  }

  /** The GPU buffer of a tensor (uploaded first if its values are on the host). */
  buffer(t: tf.TensorInfo): GBuffer {
    this.backend.uploadToGPU(t.dataId);
    return this.backend.tensorMap.get(t.dataId).resource as GBuffer;
  }

  /** A new float32 (or int32) tensor of `shape` with its GPU buffer allocated (its values are what the next op writes). */
  output(shape: number[], dtype: 'float32' | 'int32' = 'float32'): { tensor: tf.Tensor; buffer: GBuffer } {
    const info = this.backend.makeTensorInfo(shape, dtype);
    const buffer = this.buffer(info);
    return { tensor: tf.engine().makeTensorFromTensorInfo(info), buffer };
  }

  /**
   * A new tensor of `shape` holding `values`. When nothing is recorded but unsubmitted (TF.js's command
   * encoder is closed), the values go straight into the tensor's pool buffer by queue.writeBuffer: a
   * buffer in the pool's free list is used by submitted commands only (TF.js returns a buffer that
   * pending commands use only when they are submitted), and the write comes after those in the queue
   * and before every command recorded later. TF.js's own upload (the fallback, while commands are
   * recorded: a write would overtake them) makes a mapped staging buffer per tensor, copies through it
   * with a command, and destroys it at the next submit.
   */
  upload(values: Float32Array | Int32Array, shape: number[], dtype: 'float32' | 'int32' = 'float32'): tf.Tensor {
    if (this.backend.commandEncoder !== null || values.length === 0) return tf.tensor(values, shape, dtype);
    const { tensor, buffer } = this.output(shape, dtype);
    this.backend.device.queue.writeBuffer(buffer, 0, values);
    return tensor;
  }

  /** A buffer owned here for intermediates of one role (`name`) and at least `floats` float32 values. */
  scratch(name: string, floats: number): GBuffer {
    const key = `${name}:${floats}`;
    let b = this.scratchBuffers.get(key);
    if (!b) {
      b = this.backend.device.createBuffer({
        size: Math.max(16, floats * 4),
        usage: USAGE.STORAGE | USAGE.COPY_SRC | USAGE.COPY_DST,
      });
      this.scratchBuffers.set(key, b);
    }
    return b;
  }

  /** bytes held by scratch() buffers */
  scratchBytes(): number {
    let n = 0;
    for (const b of this.scratchBuffers.values()) n += b.size;
    return n;
  }

  private bindGroup(d: Dispatch): unknown {
    let key = `${d.kernel.id}|`;
    for (const b of d.buffers) key += `${this.bufferIds.of(b)},`;
    let g = this.binds.get(key);
    if (g) {
      this.counters.bindGroupsReused++;
      return g;
    }
    // bounded: a changing set of buffers (e.g. another batch size) must not grow the cache forever
    if (this.binds.size >= 8192) this.binds.clear();
    g = this.backend.device.createBindGroup({
      layout: d.kernel.layout,
      entries: d.buffers.map((buffer, i) => ({ binding: i, resource: { buffer } })),
    });
    this.binds.set(key, g);
    this.counters.bindGroupsCreated++;
    return g;
  }

  /**
   * Records `ops` in order into TF.js's command stream. `tensors`: every TF.js tensor the ops read or
   * write (their buffers must stay theirs until the pending command buffer is submitted).
   */
  run(ops: Dispatch[], tensors: tf.TensorInfo[]): void {
    const b = this.backend;
    // buffers first: an upload may record a copy, which needs the compute pass closed
    for (const t of tensors) this.buffer(t);
    b.ensureCommandEncoderReady();
    this.counters.dispatches += ops.length;
    if (this.timer !== null && this.timestamps) {
      this.runTimed(ops, tensors, this.timer);
      return;
    }
    if (!b.computePassEncoder) b.computePassEncoder = b.commandEncoder!.beginComputePass({});
    const pass = b.computePassEncoder;
    for (const d of ops) {
      pass.setPipeline(d.kernel.pipeline);
      pass.setBindGroup(0, this.bindGroup(d));
      pass.dispatchWorkgroups(d.groups[0], d.groups[1], d.groups[2]);
    }
    for (const t of tensors) b.commandQueueOwnedIds.add(t.dataId);
    b.dispatchCountInPass += ops.length;
    const batch = tf.env().get('WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE') as number;
    if (b.dispatchCountInPass >= Math.min(batch, this.submitLimit)) {
      b.endComputePassEncoder();
      b.submitQueue();
      this.submitLimit = this.submitLimit * 2 < batch ? this.submitLimit * 2 : Infinity;
    }
  }

  /**
   * Submits what is recorded so far and, with FPDM_SUBMIT_RAMP = n set (submitRampDefault), makes the
   * next command buffers hold n, 2n, 4n, … dispatches (up to the submit batch); returns whether it did.
   * Called at a training step's start, after the embedders: a step starts after the host read that ended
   * the one before, so the device waits idle until the first submit.
   */
  rampSubmits(): boolean {
    const first = submitRampDefault();
    this.flush();
    this.submitLimit = first > 0 ? first : Infinity;
    return first > 0;
  }

  /**
   * Submits what is recorded so far, so that the device starts on it while the host records the rest
   * (a step starts after the host read that ended the previous one; waiting for the submit batch would
   * leave the device idle meanwhile).
   */
  flush(): void {
    const b = this.backend;
    this.submitLimit = Infinity;
    if (b.dispatchCountInPass === 0) return;
    b.endComputePassEncoder();
    b.submitQueue();
  }

  /** run() with every dispatch in its own pass between two timestamps (the bench's profiled step). */
  private runTimed(ops: Dispatch[], tensors: tf.TensorInfo[], timer: NonNullable<RawKernels['timer']>): void {
    const b = this.backend;
    b.endComputePassEncoder();
    const enc = b.commandEncoder!;
    const count = 2 * ops.length;
    const query = b.device.createQuerySet({ type: 'timestamp', count });
    ops.forEach((d, i) => {
      const pass = enc.beginComputePass({
        timestampWrites: { querySet: query, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 },
      });
      pass.setPipeline(d.kernel.pipeline);
      pass.setBindGroup(0, this.bindGroup(d));
      pass.dispatchWorkgroups(d.groups[0], d.groups[1], d.groups[2]);
      pass.end();
    });
    const resolve = b.device.createBuffer({ size: 8 * count, usage: USAGE.QUERY_RESOLVE | USAGE.COPY_SRC });
    const staging = b.device.createBuffer({ size: 8 * count, usage: USAGE.MAP_READ | USAGE.COPY_DST });
    enc.resolveQuerySet(query, 0, count, resolve, 0);
    enc.copyBufferToBuffer(resolve, 0, staging, 0, 8 * count);
    for (const t of tensors) b.commandQueueOwnedIds.add(t.dataId);
    // submitted before the staging buffer is mapped (mapping a buffer that a pending submit uses is a
    // validation error, and the submit would not run)
    b.submitQueue();
    const times = staging.mapAsync(MAP_READ).then(() => {
      const t = new BigUint64Array(staging.getMappedRange().slice(0));
      staging.unmap();
      staging.destroy();
      resolve.destroy();
      query.destroy();
      return ops.map((_, i) => Number(t[2 * i + 1]! - t[2 * i]!) / 1e6);
    });
    ops.forEach((d, i) => timer.push({ name: d.kernel.key.split(':')[0]!, ms: times.then((ts) => ts[i]!) }));
  }
}

let instance: { backend: unknown; k: RawKernels } | null = null;

/** The direct-dispatch runtime of the active webgpu backend, or null on any other backend. */
export function rawKernels(): RawKernels | null {
  if (tf.getBackend() !== 'webgpu') return null;
  const backend = tf.backend() as unknown as WebGPUBackendLike;
  if (!instance || instance.backend !== backend) instance = { backend, k: new RawKernels(backend) };
  return instance.k;
}
