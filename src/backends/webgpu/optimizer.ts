// Fused AdamW + EMA on the webgpu backend: raw WGSL compute dispatches on TF.js's own device and
// buffers, bypassing TF.js's per-kernel bookkeeping (≈ 130 µs of host time per TF.js kernel).
//
//   norm     one `sumsq` dispatch per 7 gradient tensors (workgroup partial sums of g²), then one
//            `reduce` dispatch that sums the partials in a fixed order and writes √Σ into a new [1]
//            TF.js tensor (read by the caller together with the loss: one host read per step); with
//            loss scaling (the gradients are S·g) the norm is multiplied by 1/S there, so it is ‖g‖
//   update   one dispatch per parameter tensor that reads g and rewrites p, m, v and the EMA copy
//            in place (no intermediates):
//              g ← g·(1/S) (loss scaling; 1 without);
//              g ← g·clip (only when clip < 1; clip = min(1, maxNorm / (‖g‖ + 1e-6)) computed on the device
//              from the norm in a status buffer [loss, ‖g‖], so no host read is needed before the update);
//              p ← p·(1 − lr·λ) (only when λ > 0)
//              m ← β1·m + (1 − β1)·g;  v ← β2·v + (1 − β2)·g²
//              p ← p − stepSize · m / (√v / √(1 − β2^t) + ε);  ema ← d·ema + (1 − d)·p
//            the same operations in the same order as the TF.js op sequence of src/training/adamw.ts
//            and ema.ts (`adamwEmaReference` there mirrors this kernel in float32 on the host, given the
//            coefficient). Nothing is written when the status's loss is not finite (a diverged step
//            leaves the weights, moments and EMA as they were, as the loop's host check requires),
//            nor, with loss scaling, when its norm is not finite (an overflow: the step is skipped and
//            the loop lowers S, as PyTorch's GradScaler does).
// Both passes go into one command buffer submitted after TF.js's pending work (queue order keeps
// them between the backward pass and whatever TF.js records next). Bind groups are cached by the exact
// buffers they bind: the norm's result and the status are copied through buffers owned here (a copy
// command each), so only the gradients' buffers, which TF.js's pool hands out, vary from step to step. Written variables get their
// CPU-side cache cleared, so `data()` and checkpoints read the new values. A variable whose buffer
// is shared with another tensor (TF.js's clone shares buffers: the EMA copy starts as a clone of the
// weights) gets a private copy first, since an in-place write would change both.
import * as tf from '@tensorflow/tfjs-core';
import {
  BufferIds,
  MAP_READ,
  USAGE,
  type GBuffer,
  type GEncoder,
  type GPass,
  type WebGPUBackendLike,
} from './types.js';

const WG = 256;
const MAX_GROUPS_X = 65535;

/** gradient tensors per norm dispatch: 7 inputs + the partials = 8 storage buffers, the default limit */
const NORM_GROUP = 7;

/**
 * Partial sums of g² for `m` gradient tensors in one dispatch: workgroup w belongs to the member k whose
 * range [first_k, first_k + numParts_k) holds it, and computes that member's partial w − first_k exactly
 * as a dispatch of its own would (same elements, same order).
 */
function sumsqWgsl(m: number): string {
  const ks = Array.from({ length: m }, (_, k) => k);
  return /* wgsl */ `
struct Rec { n: u32, partOffset: u32, numParts: u32, first: u32 }
struct Info { r: array<Rec, ${NORM_GROUP}> }
${ks.map((k) => `@group(0) @binding(${k}) var<storage, read> g${k}: array<f32>;`).join('\n')}
@group(0) @binding(${m}) var<storage, read_write> parts: array<f32>;
@group(0) @binding(${m + 1}) var<uniform> info: Info;
var<workgroup> sh: array<f32, ${WG}>;
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  var k = 0u;
  for (var q = 1u; q < ${m}u; q = q + 1u) { if (wid.x >= info.r[q].first) { k = q; } }
  let rec = info.r[k];
  let w = wid.x - rec.first;
  let stride = rec.numParts * ${WG}u;
  var acc = 0.0;
  switch k {
${ks
  .map(
    (k) => `    case ${k}u: {
      for (var i = w * ${WG}u + lid.x; i < rec.n; i = i + stride) { let x = g${k}[i]; acc = acc + x * x; }
    }`,
  )
  .join('\n')}
    default: {}
  }
  sh[lid.x] = acc;
  workgroupBarrier();
  for (var s = ${WG / 2}u; s > 0u; s = s >> 1u) {
    if (lid.x < s) { sh[lid.x] = sh[lid.x] + sh[lid.x + s]; }
    workgroupBarrier();
  }
  if (lid.x == 0u) { parts[rec.partOffset + w] = sh[0]; }
}`;
}

const REDUCE = /* wgsl */ `
struct Info { n: u32, partOffset: u32, numParts: u32, pad: u32 }
struct Scale { inv: f32, pad0: f32, pad1: f32, pad2: f32 }
@group(0) @binding(0) var<storage, read> parts: array<f32>;
@group(0) @binding(1) var<storage, read_write> result: array<f32>;
@group(0) @binding(2) var<uniform> info: Info;
@group(0) @binding(3) var<uniform> scale: Scale;
var<workgroup> sh: array<f32, ${WG}>;
@compute @workgroup_size(${WG})
fn main(@builtin(local_invocation_id) lid: vec3<u32>) {
  var acc = 0.0;
  for (var i = lid.x; i < info.n; i = i + ${WG}u) { acc = acc + parts[i]; }
  sh[lid.x] = acc;
  workgroupBarrier();
  for (var s = ${WG / 2}u; s > 0u; s = s >> 1u) {
    if (lid.x < s) { sh[lid.x] = sh[lid.x] + sh[lid.x + s]; }
    workgroupBarrier();
  }
  if (lid.x == 0u) { result[0] = sqrt(sh[0]) * scale.inv; }
}`;

const UPDATE = /* wgsl */ `
struct Step {
  clip: f32, decay: f32, b1: f32, omb1: f32,
  b2: f32, omb2: f32, bc2sqrt: f32, eps: f32,
  stepSize: f32, emaD: f32, omEmaD: f32, flags: u32,
  gscale: f32, pad0: f32, pad1: f32, pad2: f32,
}
struct Info { n: u32, groupsX: u32, pad0: u32, pad1: u32 }
@group(0) @binding(0) var<storage, read> g: array<f32>;
@group(0) @binding(1) var<storage, read_write> p: array<f32>;
@group(0) @binding(2) var<storage, read_write> m: array<f32>;
@group(0) @binding(3) var<storage, read_write> v: array<f32>;
@group(0) @binding(4) var<storage, read_write> ema: array<f32>;
@group(0) @binding(5) var<uniform> st: Step;
@group(0) @binding(6) var<uniform> info: Info;
@group(0) @binding(7) var<storage, read> status: array<f32>;
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = (wid.y * info.groupsX + wid.x) * ${WG}u + lid.x;
  if (i >= info.n) { return; }
  // status = [loss, ‖g‖]: a step whose loss is not finite (exponent bits all set) changes nothing
  if ((bitcast<u32>(status[0]) & 0x7f800000u) == 0x7f800000u) { return; }
  // with loss scaling, a step whose gradient norm is not finite (an f16 overflow) changes nothing either
  if ((st.flags & 4u) != 0u && (bitcast<u32>(status[1]) & 0x7f800000u) == 0x7f800000u) { return; }
  var grad = g[i] * st.gscale;
  if ((st.flags & 1u) != 0u) {
    let c = min(1.0, st.clip / (status[1] + 1e-6));
    if (c < 1.0) { grad = grad * c; }
  }
  var pd = p[i];
  if ((st.flags & 2u) != 0u) { pd = pd * st.decay; }
  let mN = m[i] * st.b1 + grad * st.omb1;
  let vN = v[i] * st.b2 + (grad * grad) * st.omb2;
  let denom = sqrt(vN) / st.bc2sqrt + st.eps;
  let pN = pd - (mN / denom) * st.stepSize;
  m[i] = mN;
  v[i] = vN;
  p[i] = pN;
  ema[i] = ema[i] * st.emaD + pN * st.omEmaD;
}`;

/** Per-step scalars of the update, as the float32 values the TF.js path multiplies by. */
export interface FusedStepScalars {
  /** clip coefficient min(1, maxNorm / (‖g‖ + 1e-6)); applied only when < 1 */
  clip: number;
  /** 1 − lr·λ; applied only when weightDecay > 0 */
  decay: number;
  applyDecay: boolean;
  beta1: number;
  beta2: number;
  /** √(1 − β2^t) */
  bc2Sqrt: number;
  eps: number;
  /** lr / (1 − β1^t) */
  stepSize: number;
  emaDecay: number;
  /** 1/S with loss scaling (the gradients are S·g), else 1 */
  gradScale: number;
}

/**
 * The update's float scalars in the order of the kernel's Step uniform (clip, decay, β1, 1 − β1, β2,
 * 1 − β2, √(1 − β2^t), ε, step size, EMA d, 1 − d; then, after the flags, 1/S); the host mirror
 * (training/adamw.ts) reads the same list.
 */
export function stepValues(s: FusedStepScalars): number[] {
  return [
    s.clip,
    s.decay,
    s.beta1,
    1 - s.beta1,
    s.beta2,
    1 - s.beta2,
    s.bc2Sqrt,
    s.eps,
    s.stepSize,
    s.emaDecay,
    1 - s.emaDecay,
    s.gradScale,
  ];
}

/** One parameter's tensors for the fused update; p, m, v, ema are rewritten in place. */
export interface FusedEntry {
  g: tf.Tensor;
  p: tf.Variable;
  m: tf.Variable;
  v: tf.Variable;
  ema: tf.Variable;
}

/** bind groups kept at most (a changing set of buffers, e.g. another model, must not grow the cache forever) */
const MAX_BINDS = 8192;

class FusedOptimizerKernels {
  /** the norm's partial-sum pipelines by group size (1..NORM_GROUP), compiled on first use */
  private readonly sumsq = new Map<number, { getBindGroupLayout(i: number): unknown }>();
  private readonly make: (code: string) => { getBindGroupLayout(i: number): unknown };
  private readonly reduce: { getBindGroupLayout(i: number): unknown };
  private readonly update: { getBindGroupLayout(i: number): unknown };
  private readonly stepUniform: GBuffer;
  /** the norm's factor 1/S (loss scaling), written before each norm */
  private readonly scaleUniform: GBuffer;
  /**
   * [loss, ‖g‖] as the update reads it: copied from the caller's status tensor (a new tensor each step)
   * or written from the host's norm, so that the update's bind groups do not depend on it
   */
  private readonly status: GBuffer;
  /** the reduce's result √Σ·(1/S), copied into each step's new [1] tensor */
  private readonly normOut: GBuffer;
  private readonly timestamps: boolean;
  private infoBuffer: GBuffer | null = null;
  private infoFor: number[] | null = null;
  private parts: GBuffer | null = null;
  /** bind groups by (slot, buffer ids): norm groups, the reduce, the updates */
  private readonly binds = new Map<string, unknown>();
  private readonly bufferIds = new BufferIds();
  /** bind groups created and reused (for the bench's per-step profile) */
  readonly bindCounters = { created: 0, reused: 0 };
  /** raw dispatches and submits issued so far (for the bench's per-step profile) */
  readonly counters = { dispatches: 0, submits: 0 };
  /** while set, each pass gets timestamp queries and its GPU milliseconds are pushed here */
  timer: Array<Promise<number>> | null = null;

  constructor(private readonly backend: WebGPUBackendLike) {
    const d = backend.device;
    const make = (code: string) =>
      d.createComputePipeline({
        layout: 'auto',
        compute: { module: d.createShaderModule({ code }), entryPoint: 'main' },
      });
    this.make = make;
    this.reduce = make(REDUCE);
    this.update = make(UPDATE);
    this.stepUniform = d.createBuffer({ size: 64, usage: USAGE.UNIFORM | USAGE.COPY_DST });
    this.scaleUniform = d.createBuffer({ size: 16, usage: USAGE.UNIFORM | USAGE.COPY_DST });
    this.status = d.createBuffer({ size: 16, usage: USAGE.STORAGE | USAGE.COPY_DST });
    this.normOut = d.createBuffer({ size: 16, usage: USAGE.STORAGE | USAGE.COPY_SRC });
    this.timestamps = d.features.has('timestamp-query');
  }

  private tensorBuffer(t: tf.TensorInfo): GBuffer {
    this.backend.uploadToGPU(t.dataId);
    return this.backend.tensorMap.get(t.dataId).resource as GBuffer;
  }

  private sumsqPipeline(m: number): { getBindGroupLayout(i: number): unknown } {
    let p = this.sumsq.get(m);
    if (!p) {
      p = this.make(sumsqWgsl(m));
      this.sumsq.set(m, p);
    }
    return p;
  }

  /**
   * Layout of the uniform records (256-byte aligned): one norm record per group of NORM_GROUP tensors
   * (n, partial offset, partials, first workgroup of each member), then one update record per tensor,
   * then the reduce record.
   */
  private ensureInfo(sizes: number[]): {
    partOffsets: number[];
    numParts: number[];
    totalParts: number;
    groups: number;
  } {
    const groups = Math.ceil(sizes.length / NORM_GROUP);
    const numParts = sizes.map((n) => Math.max(1, Math.min(256, Math.ceil(n / (WG * 16)))));
    const partOffsets: number[] = [];
    let total = 0;
    for (const k of numParts) {
      partOffsets.push(total);
      total += k;
    }
    const same =
      this.infoFor !== null && this.infoFor.length === sizes.length && this.infoFor.every((n, i) => n === sizes[i]);
    if (!same) {
      const d = this.backend.device;
      this.infoBuffer?.destroy();
      this.parts?.destroy();
      const records = groups + sizes.length + 1;
      const data = new Uint32Array(records * 64);
      let first = 0;
      sizes.forEach((n, i) => {
        const k = i % NORM_GROUP;
        if (k === 0) first = 0;
        data.set([n, partOffsets[i]!, numParts[i]!, first], Math.floor(i / NORM_GROUP) * 64 + 4 * k); // norm record
        first += numParts[i]!;
        const wgs = Math.ceil(n / WG);
        const gx = Math.min(wgs, MAX_GROUPS_X);
        data.set([n, gx, 0, 0], (groups + i) * 64); // update record
      });
      data.set([total, 0, total, 0], (groups + sizes.length) * 64); // reduce record
      this.infoBuffer = d.createBuffer({ size: data.byteLength, usage: USAGE.UNIFORM | USAGE.COPY_DST });
      d.queue.writeBuffer(this.infoBuffer, 0, data);
      this.parts = d.createBuffer({ size: Math.max(4, total * 4), usage: USAGE.STORAGE });
      this.infoFor = [...sizes];
      this.binds.clear();
    }
    return { partOffsets, numParts, totalParts: total, groups };
  }

  /** The bind group of `slot` (e.g. `u3`: the fourth update) over exactly `buffers`, made the first time. */
  private bindCached(slot: string, buffers: GBuffer[], make: () => unknown): unknown {
    const key = `${slot}|${buffers.map((b) => this.bufferIds.of(b)).join(',')}`;
    let bind = this.binds.get(key);
    if (bind !== undefined) {
      this.bindCounters.reused++;
      return bind;
    }
    if (this.binds.size >= MAX_BINDS) this.binds.clear();
    bind = make();
    this.binds.set(key, bind);
    this.bindCounters.created++;
    return bind;
  }

  /** Flushes TF.js's recorded work so that ours runs after it. */
  private flushTfjs(): void {
    this.backend.ensureCommandEncoderReady();
    this.backend.endComputePassEncoder();
    this.backend.submitQueue();
  }

  /**
   * A compute pass on `enc`, timed while `timer` is set: `finish()` (after the pass ends, before the
   * submit) records the timestamp copy and returns what to call once the encoder is submitted (mapping
   * the staging buffer before that submit is a validation error, and the submit would not run).
   */
  private beginPass(enc: GEncoder): { pass: GPass; finish: () => () => void } {
    const stats = this.timer;
    if (!stats || !this.timestamps) return { pass: enc.beginComputePass(), finish: () => () => undefined };
    const d = this.backend.device;
    const qs = d.createQuerySet({ type: 'timestamp', count: 2 });
    const pass = enc.beginComputePass({
      timestampWrites: { querySet: qs, beginningOfPassWriteIndex: 0, endOfPassWriteIndex: 1 },
    });
    return {
      pass,
      finish: () => {
        const resolve = d.createBuffer({ size: 16, usage: USAGE.QUERY_RESOLVE | USAGE.COPY_SRC });
        const staging = d.createBuffer({ size: 16, usage: USAGE.MAP_READ | USAGE.COPY_DST });
        enc.resolveQuerySet(qs, 0, 2, resolve, 0);
        enc.copyBufferToBuffer(resolve, 0, staging, 0, 16);
        return () =>
          stats.push(
            staging.mapAsync(MAP_READ).then(() => {
              const t = new BigUint64Array(staging.getMappedRange().slice(0));
              staging.unmap();
              staging.destroy();
              resolve.destroy();
              (qs as { destroy(): void }).destroy();
              return Number(t[1]! - t[0]!) / 1e6;
            }),
          );
      },
    };
  }

  /**
   * √(Σ‖g‖²)·invScale over all gradients as a new [1] float32 tensor (the caller disposes it);
   * invScale 1/S undoes loss scaling (S a power of 2: exact).
   */
  globalNorm(grads: tf.Tensor[], sizesKey: number[], invScale = 1): tf.Tensor {
    const { numParts, groups } = this.ensureInfo(sizesKey);
    const out = this.backend.makeTensorInfo([1], 'float32');
    const outBuf = this.tensorBuffer(out);
    const gBufs = grads.map((g) => this.tensorBuffer(g));
    this.flushTfjs();
    const d = this.backend.device;
    d.queue.writeBuffer(this.scaleUniform, 0, new Float32Array([invScale, 0, 0, 0]));
    const enc = d.createCommandEncoder();
    const { pass, finish } = this.beginPass(enc);
    for (let gi = 0; gi < groups; gi++) {
      const members = gBufs.slice(gi * NORM_GROUP, (gi + 1) * NORM_GROUP);
      const m = members.length;
      const pipeline = this.sumsqPipeline(m);
      const bind = this.bindCached(`n${gi}`, members, () =>
        d.createBindGroup({
          layout: pipeline.getBindGroupLayout(0),
          entries: [
            ...members.map((buffer, k) => ({ binding: k, resource: { buffer } })),
            { binding: m, resource: { buffer: this.parts } },
            { binding: m + 1, resource: { buffer: this.infoBuffer, offset: gi * 256, size: 16 * NORM_GROUP } },
          ],
        }),
      );
      pass.setPipeline(pipeline);
      pass.setBindGroup(0, bind);
      const wgs = numParts.slice(gi * NORM_GROUP, (gi + 1) * NORM_GROUP).reduce((a, b) => a + b, 0);
      pass.dispatchWorkgroups(wgs);
    }
    pass.setPipeline(this.reduce);
    pass.setBindGroup(
      0,
      this.bindCached('r', [this.parts!, this.infoBuffer!], () =>
        d.createBindGroup({
          layout: this.reduce.getBindGroupLayout(0),
          entries: [
            { binding: 0, resource: { buffer: this.parts } },
            { binding: 1, resource: { buffer: this.normOut } },
            { binding: 2, resource: { buffer: this.infoBuffer, offset: (groups + grads.length) * 256, size: 16 } },
            { binding: 3, resource: { buffer: this.scaleUniform } },
          ],
        }),
      ),
    );
    pass.dispatchWorkgroups(1);
    pass.end();
    enc.copyBufferToBuffer(this.normOut, 0, outBuf, 0, 4);
    const submitted = finish();
    d.queue.submit([enc.finish()]);
    submitted();
    this.counters.dispatches += groups + 1;
    this.counters.submits += 1;
    return tf.engine().makeTensorFromTensorInfo(out);
  }

  /**
   * The in-place update of every entry (see the file header). `status`: [loss, ‖g‖, …] on the device
   * (the loop's read-back tensor), or the host's norm (then the loss is taken as finite); `maxNorm`: the
   * clipping threshold, or null for none (s.clip is the host's coefficient, for the mirror; unused here).
   * With s.gradScale ≠ 1 (loss scaling) a non-finite norm in `status` skips the update too.
   */
  apply(
    entries: FusedEntry[],
    s: FusedStepScalars,
    sizesKey: number[],
    status: { tensor: tf.Tensor } | { norm: number },
    maxNorm: number | null,
  ): void {
    const { groups } = this.ensureInfo(sizesKey);
    const d = this.backend.device;
    // private buffers for what is written in place (see the file header)
    for (const e of entries) {
      for (const x of [e.p, e.m, e.v, e.ema]) {
        if (this.backend.tensorMap.get(x.dataId).refCount > 1) tf.tidy(() => x.assign(tf.mul(x, 1)));
      }
    }
    const bufs = entries.map((e) => [e.g, e.p, e.m, e.v, e.ema].map((t) => this.tensorBuffer(t)));
    const statusTensor =
      'tensor' in status ? { buffer: this.tensorBuffer(status.tensor), size: status.tensor.size } : null;
    if (!('tensor' in status)) d.queue.writeBuffer(this.status, 0, new Float32Array([0, status.norm]));
    this.flushTfjs();
    const st = new ArrayBuffer(64);
    const f = new Float32Array(st);
    const values = stepValues(s);
    f.set(values.slice(0, 11));
    f[12] = values[11]!; // 1/S, after the flags
    f[0] = maxNorm ?? 0; // the kernel computes the coefficient from the status's norm
    new Uint32Array(st, 44, 1)[0] = (maxNorm !== null ? 1 : 0) | (s.applyDecay ? 2 : 0) | (s.gradScale !== 1 ? 4 : 0);
    d.queue.writeBuffer(this.stepUniform, 0, st);
    const enc = d.createCommandEncoder();
    // [loss, ‖g‖] (a status of one value, the loss alone, is read only where flags need no norm)
    if (statusTensor)
      enc.copyBufferToBuffer(statusTensor.buffer, 0, this.status, 0, Math.min(8, statusTensor.size * 4));
    const { pass, finish } = this.beginPass(enc);
    pass.setPipeline(this.update);
    const n = entries.length;
    entries.forEach((e, i) => {
      const b = bufs[i]!;
      const bind = this.bindCached(`u${i}`, b, () =>
        d.createBindGroup({
          layout: this.update.getBindGroupLayout(0),
          entries: [
            ...b.map((buffer, k) => ({ binding: k, resource: { buffer } })),
            { binding: 5, resource: { buffer: this.stepUniform } },
            { binding: 6, resource: { buffer: this.infoBuffer, offset: (groups + i) * 256, size: 16 } },
            { binding: 7, resource: { buffer: this.status } },
          ],
        }),
      );
      const wgs = Math.ceil(e.p.size / WG);
      const gx = Math.min(wgs, MAX_GROUPS_X);
      pass.setBindGroup(0, bind);
      pass.dispatchWorkgroups(gx, Math.ceil(wgs / gx));
    });
    pass.end();
    const submitted = finish();
    d.queue.submit([enc.finish()]);
    submitted();
    this.counters.dispatches += n;
    this.counters.submits += 1;
    // the CPU-side caches of what was rewritten are stale now
    for (const e of entries) for (const x of [e.p, e.m, e.v, e.ema]) this.backend.tensorMap.get(x.dataId).values = null;
  }
}

let kernels: { backend: unknown; k: FusedOptimizerKernels } | null = null;

/** The fused-optimizer kernels of the active webgpu backend, or null on any other backend. */
export function webgpuOptimizerKernels(): FusedOptimizerKernels | null {
  if (tf.getBackend() !== 'webgpu') return null;
  const backend = tf.backend() as unknown as WebGPUBackendLike;
  if (!kernels || kernels.backend !== backend) kernels = { backend, k: new FusedOptimizerKernels(backend) };
  return kernels.k;
}

export type { FusedOptimizerKernels };
