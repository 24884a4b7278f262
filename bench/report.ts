// Side-by-side rows (ours vs PyTorch), the issue's targets as met / not met, and the Markdown table.
import type { BenchSettings, InceptionMeasurement, SampleMeasurement, TrainMeasurement } from './cases.js';
import { torchRowKey, type TorchPrecision, type TorchResult, type TorchSample, type TorchTrain } from './torch.js';
import { MIXED_PRECISION_COVERS } from '../src/backends/index.js';

export interface TrainRow {
  model: string;
  batch: number;
  /** gradient checkpointing on both sides */
  gradCheckpoint: boolean;
  ours: TrainMeasurement | null;
  torch: TorchTrain | null;
  /** ours images/s ÷ PyTorch images/s */
  throughputRatio: number | null;
  /** ours peak distinct-buffer bytes (else peak tensor bytes, older files) ÷ PyTorch max_memory_allocated */
  memoryRatio: number | null;
  /**
   * --precision mixed: the same case against PyTorch's autocast float16 row (the fields above stay the
   * float32 one's); absent at fp32
   */
  autocast?: { torch: TorchTrain | null; throughputRatio: number | null; memoryRatio: number | null };
  error?: string;
}

export interface SampleRow {
  label: string;
  ours: SampleMeasurement | null;
  torch: TorchSample | null;
  /** ours ÷ PyTorch images/s, both at the same measured budget */
  throughputRatio: number | null;
  /** --precision mixed: the same case against PyTorch's autocast float16 row; absent at fp32 */
  autocast?: { torch: TorchSample | null; throughputRatio: number | null };
  error?: string;
}

export interface CpuRow {
  model: string;
  batch: number;
  stepFlops: number;
  wasm: { medianSeconds: number; gflopsPerSecond: number } | null;
  cpu: { medianSeconds: number; gflopsPerSecond: number } | null;
  /** wasm GFLOP/s ÷ cpu GFLOP/s */
  wasmOverCpu: number | null;
  error?: string;
}

export interface TargetRow {
  target: string;
  measured: number | null;
  threshold: string;
  status: 'met' | 'not met' | 'not measured';
}

const ratio = (a: number | undefined | null, b: number | undefined | null): number | null =>
  a !== undefined && a !== null && b !== undefined && b !== null && b > 0 && Number.isFinite(a) ? a / b : null;

/** The block-kernel column: the direct-dispatch block, or which fused TF.js kernels. */
function blockKernelsText(st: BenchSettings): string {
  if (st.rawBlock) return st.directStep ? 'direct dispatch, no tape' : 'direct dispatch';
  if (!st.fusedBlock) return 'no';
  if (!st.fusedEpilogue) return 'yes';
  return st.fusedBias === false ? 'yes + epilogues, bias apart' : 'yes + epilogues';
}

/**
 * Our peak memory of a training step: distinct live buffers where measured, else the per-handle tensor bytes,
 * plus the direct-dispatch kernels' scratch where reported (held by the process: it may include buffers of
 * rows run before in the same process).
 */
export function oursPeak(m: TrainMeasurement | null | undefined): number | null {
  if (!m) return null;
  const peak = m.buffers?.peakBufferBytes ?? m.memory?.peakTensorBytes ?? null;
  // on webgpu the direct-dispatch kernels' scratch is memory the step needs too, though no tensor holds it
  return peak === null ? null : peak + (m.memory?.directScratchBytes ?? 0);
}

/**
 * Our training row paired with PyTorch's float32 row of the same model, batch and checkpointing, and with
 * `autocast` (our --precision mixed) also with its autocast float16 row.
 */
export function trainRow(
  model: string,
  batch: number,
  ours: TrainMeasurement | null,
  torch: TorchResult,
  error?: string,
  gradCheckpoint = false,
  autocast = false,
): TrainRow {
  const find = (key: TorchPrecision): TorchTrain | null =>
    torch.train?.find(
      (r) =>
        r.model === model &&
        r.batch === batch &&
        (r.gradCheckpoint ?? false) === gradCheckpoint &&
        torchRowKey(r) === key,
    ) ?? null;
  const t = find('fp32');
  const a = autocast ? find('fp16') : null;
  return {
    model,
    batch,
    gradCheckpoint,
    ours,
    torch: t,
    throughputRatio: ratio(ours?.imagesPerSecond, t?.imagesPerSecond),
    memoryRatio: ratio(oursPeak(ours), t?.peakBytes),
    ...(autocast
      ? {
          autocast: {
            torch: a,
            throughputRatio: ratio(ours?.imagesPerSecond, a?.imagesPerSecond),
            memoryRatio: ratio(oursPeak(ours), a?.peakBytes),
          },
        }
      : {}),
    ...(error ? { error } : {}),
  };
}

export function sampleLabel(m: { model: string; steps: number; iters: number | null; reuse: boolean }): string {
  return m.iters === null
    ? `${m.model}, ${m.steps} steps`
    : `${m.model}, ${m.steps}×${m.iters}${m.reuse ? ', reuse' : ''}`;
}

/** Our sampling row paired as trainRow pairs (float32, and with `autocast` also autocast float16). */
export function sampleRow(
  label: string,
  match: { model: string; steps: number; iters: number | null; reuse: boolean; batch: number },
  ours: SampleMeasurement | null,
  torch: TorchResult,
  error?: string,
  autocast = false,
): SampleRow {
  const find = (key: TorchPrecision): TorchSample | null =>
    torch.sample?.find(
      (r) =>
        r.model === match.model &&
        r.steps === match.steps &&
        (r.iters ?? null) === match.iters &&
        r.reuse === match.reuse &&
        r.batch === match.batch &&
        torchRowKey(r) === key,
    ) ?? null;
  const t = find('fp32');
  const a = autocast ? find('fp16') : null;
  return {
    label,
    ours,
    torch: t,
    throughputRatio: ratio(ours?.imagesPerSecond, t?.imagesPerSecond),
    ...(autocast ? { autocast: { torch: a, throughputRatio: ratio(ours?.imagesPerSecond, a?.imagesPerSecond) } } : {}),
    ...(error ? { error } : {}),
  };
}

const status = (v: number | null, ok: (v: number) => boolean): TargetRow['status'] =>
  v === null ? 'not measured' : ok(v) ? 'met' : 'not met';

const atLeast = (target: string, v: number | null, min: number): TargetRow => ({
  target,
  measured: v,
  threshold: `≥ ${min}`,
  status: status(v, (x) => x >= min),
});

/**
 * The issue's targets, computed from the measured rows. At fp32: ≥ 0.5× PyTorch float32. With `mixed`
 * (our --precision mixed): ≥ 0.5× PyTorch autocast float16, the like-for-like comparison, and the stretch
 * target ≥ 1× PyTorch float32.
 */
export function targets(train: TrainRow[], sample: SampleRow[], mixed = false): TargetRow[] {
  const speed = (what: string, r: TrainRow | SampleRow | undefined): TargetRow[] =>
    mixed
      ? [
          atLeast(`${what} ≥ 0.5× PyTorch autocast float16 (images/s)`, r?.autocast?.throughputRatio ?? null, 0.5),
          atLeast(`${what}, mixed precision ≥ 1× PyTorch fp32 (images/s; stretch)`, r?.throughputRatio ?? null, 1),
        ]
      : [atLeast(`${what} ≥ 0.5× PyTorch (images/s)`, r?.throughputRatio ?? null, 0.5)];
  const out: TargetRow[] = [];
  for (const name of ['FPDM(DiT-S/2, pre=1, post=1)', 'DiT-S/2']) {
    // the last row of a model is the chosen setting (variants are measured in order, the chosen one last)
    out.push(
      ...speed(
        `${name} training`,
        train.findLast((x) => x.model === name && !x.gradCheckpoint),
      ),
    );
  }
  for (const r of sample) out.push(...speed(`sampling ${r.label}`, r));
  // every DiT row with its FPDM (1/1) partner: the paper's memory claim, on our side
  for (const d of train.filter((r) => r.model.startsWith('DiT'))) {
    const f = train.find(
      (r) =>
        r.model === `FPDM(${d.model}, pre=1, post=1)` &&
        r.gradCheckpoint === d.gradCheckpoint &&
        r.ours?.settings?.submitBatch === d.ours?.settings?.submitBatch &&
        r.ours?.settings?.fusedOptimizer === d.ours?.settings?.fusedOptimizer &&
        r.ours?.settings?.fusedBlock === d.ours?.settings?.fusedBlock &&
        r.ours?.settings?.fusedEpilogue === d.ours?.settings?.fusedEpilogue &&
        r.ours?.settings?.fusedBias === d.ours?.settings?.fusedBias &&
        r.ours?.settings?.rawBlock === d.ours?.settings?.rawBlock &&
        r.ours?.settings?.directStep === d.ours?.settings?.directStep,
    );
    const v = ratio(oursPeak(f?.ours), oursPeak(d.ours));
    const ck = d.gradCheckpoint ? ', both with gradient checkpointing' : '';
    out.push({
      target: `FPDM(${d.model}) peak training memory ≤ 0.45× ${d.model}'s (ours, peak buffer bytes + direct-dispatch scratch${ck})`,
      measured: v,
      threshold: '≤ 0.45',
      status: status(v, (x) => x <= 0.45),
    });
  }
  return out;
}

// ---- Markdown -------------------------------------------------------------------------------------

const f2 = (v: number | null | undefined, digits = 2): string =>
  v === null || v === undefined || !Number.isFinite(v) ? '–' : v.toFixed(digits);
const gib = (b: number | null | undefined): string => (b === null || b === undefined ? '–' : (b / 2 ** 30).toFixed(2));
const x = (v: number | null): string => (v === null ? '–' : `${v.toFixed(3)}×`);

function table(head: string[], rows: string[][]): string {
  return [
    `| ${head.join(' | ')} |`,
    `| ${head.map(() => '---').join(' | ')} |`,
    ...rows.map((r) => `| ${r.join(' | ')} |`),
  ].join('\n');
}

export interface BenchDoc {
  date: string;
  command: string;
  backend: { name: string; version?: string; device?: string; precision?: string };
  versions: Record<string, string | null>;
  gitCommit: string | null;
  quick: boolean;
  /** backend settings sampling and Inception ran with (training rows record their own) */
  settings?: {
    submitBatch: number | null;
    fusedOptimizer: boolean;
    fusedBlock?: boolean;
    fusedEpilogue?: boolean;
    fusedBias?: boolean;
    rawBlock?: boolean;
    directStep?: boolean;
    dawnToggles?: string;
    mixedVector?: string;
    mixedPrefetch?: string;
    mixedHoist?: string;
    mixedPrefer?: string;
    attentionHeadTiles?: string;
    fusedAttention?: string;
    attentionTile?: string;
    submitRamp?: string;
    mixedPacked16?: string;
    mixedWeights16?: string;
    mixedAct16?: string;
    sampleDrawAhead?: string;
  };
  notes: string[];
  torch: TorchResult;
  train: TrainRow[];
  sample: SampleRow[];
  inception: {
    ours: InceptionMeasurement | null;
    torchImagesPerSecond: number | null;
    ratio: number | null;
    error?: string;
  } | null;
  cpu: CpuRow[];
  targets: TargetRow[];
}

const AUTOCAST = 'PyTorch autocast fp16';

/** What the PyTorch side measured, for the header of a --precision mixed report. */
function torchPrecisionText(t: TorchResult): string {
  const fp16 = (r: { key?: TorchPrecision }): boolean => torchRowKey(r) === 'fp16';
  if (!t.available) return 'PyTorch side: not measured in this call';
  if (![...(t.train ?? []), ...(t.sample ?? [])].some(fp16))
    return 'PyTorch side: fp32, TF32 off (no autocast rows in this PyTorch result)';
  const scalers = [...new Set((t.train ?? []).filter(fp16).map((r) => r.gradScaler?.api ?? '?'))];
  return (
    'PyTorch side: every case twice in this call, float32 (TF32 off) and autocast float16 (torch.autocast: f16 matmul operands with f32 accumulation, layer norms and softmax in f32; weights, AdamW moments and EMA in f32; the loss in f32' +
    (scalers.length ? `; dynamic loss scaling by ${scalers.join(', ')}` : '') +
    '); the tables give ours ÷ each'
  );
}

/** Autocast training rows where GradScaler skipped timed steps (inf/NaN gradients: no AdamW update in them). */
function skippedStepsText(t: TorchResult): string[] {
  const rows = (t.train ?? []).filter((r) => torchRowKey(r) === 'fp16' && (r.gradScaler?.skippedTimedSteps ?? 0) > 0);
  if (!rows.length) return [];
  const each = rows.map(
    (r) =>
      `${r.model}${r.gradCheckpoint ? ' (grad ckpt)' : ''} ${r.gradScaler!.skippedTimedSteps} of ${r.steps ?? '?'}`,
  );
  return [
    `PyTorch autocast: timed steps that GradScaler skipped (inf/NaN gradients, no AdamW update; the scale halved): ${each.join(', ')}`,
  ];
}

export function markdown(d: BenchDoc): string {
  const mixed = d.backend.precision === 'mixed';
  const parts: string[] = [];
  parts.push(`# Benchmark: ${d.backend.name}${d.quick ? ' (--quick)' : ''}, ${d.date}`);
  parts.push(
    [
      `- command: \`${d.command}\``,
      `- device: ${d.backend.device ?? 'unknown'} (backend ${d.backend.name} ${d.backend.version ?? ''})`,
      ...(mixed
        ? [
            `- precision: mixed — ${MIXED_PRECISION_COVERS} ${torchPrecisionText(d.torch)}`,
            ...skippedStepsText(d.torch).map((n) => `- ${n}`),
          ]
        : []),
      `- versions: ${Object.entries(d.versions)
        .map(([k, v]) => `${k} ${v ?? '?'}`)
        .join(', ')}`,
      `- git commit: ${d.gitCommit ?? 'unknown'}`,
      ...(d.settings?.submitBatch
        ? [
            `- webgpu: WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE ${d.settings.submitBatch} for sampling and Inception (training rows: their own column); fused optimizer ${d.settings.fusedOptimizer ? 'on' : 'off'}, fused block kernels ${d.settings.fusedBlock ? (d.settings.fusedEpilogue ? 'on (with the epilogue fusions)' : 'on') : 'off'}${d.settings.dawnToggles ? `; Dawn toggles ${d.settings.dawnToggles} (FPDM_DAWN_TOGGLES)` : ''}${d.settings.mixedVector ? `; FPDM_MIXED_VECTOR=${d.settings.mixedVector} (mixed matmuls' operands staged ${d.settings.mixedVector === '0' ? 'one value' : '4 values'} at a time)` : ''}${d.settings.mixedPrefetch ? `; FPDM_MIXED_PREFETCH=${d.settings.mixedPrefetch} (the prefetching twins of the mixed matmuls' tiles ${d.settings.mixedPrefetch === '0' ? 'not ' : ''}taken)` : ''}${d.settings.mixedHoist ? `; FPDM_MIXED_HOIST=${d.settings.mixedHoist} (the epilogues' loads ${d.settings.mixedHoist === '0' ? 'not ' : ''}hoisted)` : ''}${d.settings.mixedPrefer ? `; FPDM_MIXED_PREFER=${d.settings.mixedPrefer} (the mixed matmuls with plain loads on that tile first)` : ''}${d.settings.attentionHeadTiles ? `; FPDM_ATTENTION_HEAD_TILES=${d.settings.attentionHeadTiles} (attention's products at 72 values per head ${d.settings.attentionHeadTiles === '1' ? 'on the tiles made for 72' : 'on 64 × 64 tiles'})` : ''}${d.settings.fusedAttention ? `; FPDM_FUSED_ATTENTION=${d.settings.fusedAttention} (attention ${d.settings.fusedAttention === '0' ? 'as three kernels' : 'as one kernel'} at mixed precision)` : ''}${d.settings.attentionTile ? `; FPDM_ATTENTION_TILE=${d.settings.attentionTile} (the fused attention's subgroups, keys per chunk)` : ''}${d.settings.submitRamp ? `; FPDM_SUBMIT_RAMP=${d.settings.submitRamp} (a training step's command buffers of ${d.settings.submitRamp}, then twice as many dispatches each)` : ''}${d.settings.mixedPacked16 ? `; FPDM_MIXED_PACKED16=${d.settings.mixedPacked16} (f16 operands ${d.settings.mixedPacked16 === '0' ? 'converted to f32 as they are prefetched' : 'prefetched as raw bits'})` : ''}${d.settings.mixedWeights16 ? `; FPDM_MIXED_WEIGHTS16=${d.settings.mixedWeights16} (f16 weight copies in an FPDM solve's iterations ${d.settings.mixedWeights16 === '0' ? 'off' : 'on'})` : ''}${d.settings.mixedAct16 ? `; FPDM_MIXED_ACT16=${d.settings.mixedAct16} (LN + modulate output and merged heads ${d.settings.mixedAct16 === '0' ? 'in f32' : 'in f16'})` : ''}${d.settings.sampleDrawAhead ? `; FPDM_SAMPLE_DRAW_AHEAD=${d.settings.sampleDrawAhead} (the samplers' noise drawn ${d.settings.sampleDrawAhead === '1' ? 'on the worker' : 'on the main thread'})` : ''}`,
          ]
        : []),
      d.torch.available
        ? `- PyTorch side: torch ${d.torch.torch} (CUDA ${d.torch.cuda}) on ${d.torch.device}, TF32 matmul ${d.torch.tf32?.matmul} / cuDNN ${d.torch.tf32?.cudnn}`
        : `- PyTorch side: not measured (${d.torch.reason})`,
      ...d.notes.map((n) => `- ${n}`),
    ].join('\n'),
  );
  if (d.train.length) {
    parts.push(
      '## Training step (images/s = batch / median step seconds; memory = peak, GiB; "buffers" = distinct live tensor buffers, "handles" = tf.memory().numBytes, which counts a buffer once per tensor handle on it)',
    );
    parts.push(
      table(
        [
          'model',
          'batch',
          'grad ckpt',
          'ours img/s',
          ...(mixed
            ? [`${AUTOCAST} img/s`, `× ${AUTOCAST}`, 'PyTorch fp32 img/s', '× PyTorch fp32']
            : ['PyTorch img/s', 'ratio']),
          'ours peak buffers',
          'ours peak handles',
          'ours backend pool',
          'ours direct-dispatch scratch',
          ...(mixed
            ? [`${AUTOCAST} peak`, `memory × ${AUTOCAST}`, 'PyTorch fp32 peak', 'memory × PyTorch fp32']
            : ['PyTorch peak', 'memory ratio']),
          'ours GFLOP/s',
        ],
        d.train.map((r) => [
          r.model,
          String(r.batch),
          r.gradCheckpoint ? 'yes' : 'no',
          f2(r.ours?.imagesPerSecond),
          ...(mixed ? [f2(r.autocast?.torch?.imagesPerSecond), x(r.autocast?.throughputRatio ?? null)] : []),
          f2(r.torch?.imagesPerSecond),
          x(r.throughputRatio),
          gib(r.ours?.buffers?.peakBufferBytes),
          gib(r.ours?.memory?.peakTensorBytes),
          gib(r.ours?.memory?.backendPoolBytes),
          gib(r.ours?.memory?.directScratchBytes),
          ...(mixed ? [gib(r.autocast?.torch?.peakBytes), x(r.autocast?.memoryRatio ?? null)] : []),
          gib(r.torch?.peakBytes),
          x(r.memoryRatio),
          r.error ? `failed: ${r.error}` : f2(r.ours?.gflopsPerSecond),
        ]),
      ),
    );
  }
  if (d.train.some((r) => r.ours?.profile)) {
    parts.push(
      '## Training step profile (per step, medians of the timed steps; GPU ms = summed kernel time of one profiled step, timestamp queries; host ms (loop) = the training loop’s time per step outside its wait for the device’s results: drawing the batch and noise, recording the device’s work, the update; host CPU = process CPU time, all threads, Dawn’s event polling while the loop waits included)',
    );
    parts.push(
      table(
        [
          'model',
          'grad ckpt',
          'submit batch',
          'fused optimizer',
          'block kernels',
          'warm-up steps (flat)',
          'TF.js kernels',
          'GPU dispatches',
          'submits',
          'GPU ms',
          'host ms (loop)',
          'host CPU ms',
          'wall ms',
          'img/s',
          'largest kernel families (count, GPU ms)',
        ],
        d.train
          .filter((r) => r.ours?.profile)
          .map((r) => {
            const o = r.ours!;
            const p = o.profile;
            return [
              r.model,
              r.gradCheckpoint ? 'yes' : 'no',
              String(o.settings.submitBatch ?? '–'),
              o.settings.fusedOptimizer ? 'yes' : 'no',
              blockKernelsText(o.settings),
              `${p.warmupSteps} (${p.flat ? 'flat' : 'not flat'})`,
              f2(p.perStep.tfjsKernels, 0),
              f2(p.perStep.dispatches, 0),
              f2(p.perStep.submits, 0),
              f2(p.kernels.gpuMs, 1),
              p.perStep.hostMs !== undefined ? f2(p.perStep.hostMs, 1) : '–',
              f2(p.perStep.cpuMs, 1),
              f2(p.perStep.wallMs, 1),
              f2(o.imagesPerSecond),
              p.kernels.top
                .slice(0, 5)
                .map((k) => `${k.name} ${k.count}, ${k.ms.toFixed(1)}`)
                .join('; '),
            ];
          }),
      ),
    );
  }
  if (d.sample.length) {
    parts.push('## Sampling (one batch; images/s of the measured budget, and extrapolated to 20 DiT-step equivalents)');
    parts.push(
      table(
        [
          'configuration',
          'batch',
          'budget measured',
          'block evals',
          'ours img/s',
          ...(mixed
            ? [`${AUTOCAST} img/s`, `× ${AUTOCAST}`, 'PyTorch fp32 img/s', '× PyTorch fp32']
            : ['PyTorch img/s', 'ratio']),
          'ours img/s @20',
        ],
        d.sample.map((r) => [
          r.label,
          String(r.ours?.batch ?? r.torch?.batch ?? '–'),
          String(r.ours?.budget ?? '–'),
          f2(r.ours?.blockEvaluations ?? r.torch?.blockEvaluations, 0),
          f2(r.ours?.imagesPerSecond),
          ...(mixed ? [f2(r.autocast?.torch?.imagesPerSecond), x(r.autocast?.throughputRatio ?? null)] : []),
          f2(r.torch?.imagesPerSecond),
          x(r.throughputRatio),
          r.error ? `failed: ${r.error}` : f2(r.ours?.imagesPerSecondAt20),
        ]),
      ),
    );
  }
  if (d.sample.some((r) => r.ours?.perCall)) {
    parts.push('## Sampling profile (per sampling step = one denoiser call; GPU ms from the profiled warm-up pass)');
    parts.push(
      table(
        [
          'configuration',
          'submit batch',
          'block kernels',
          'TF.js kernels',
          'GPU dispatches',
          'GPU ms',
          'host CPU ms',
          'wall ms',
          'largest kernel families (count, GPU ms, warm-up pass)',
        ],
        d.sample
          .filter((r) => r.ours?.perCall)
          .map((r) => {
            const o = r.ours!;
            return [
              r.label,
              String(o.settings.submitBatch ?? '–'),
              blockKernelsText(o.settings),
              f2(o.perCall.tfjsKernels, 0),
              f2(o.perCall.dispatches, 0),
              f2(o.perCall.gpuMs, 1),
              f2(o.perCall.cpuMs, 1),
              f2(o.perCall.wallMs, 1),
              o.kernels.top
                .slice(0, 4)
                .map((k) => `${k.name} ${k.count}, ${k.ms.toFixed(1)}`)
                .join('; '),
            ];
          }),
      ),
    );
  }
  if (d.inception) {
    const i = d.inception;
    parts.push('## FID Inception (images/s)');
    parts.push(
      table(
        ['batch', 'ours img/s', 'PyTorch img/s (torchvision inception_v3)', 'ratio'],
        [
          [
            String(i.ours?.batch ?? '–'),
            i.error ? `failed: ${i.error}` : f2(i.ours?.imagesPerSecond),
            f2(i.torchImagesPerSecond),
            x(i.ratio),
          ],
        ],
      ),
    );
  }
  if (d.cpu.length) {
    parts.push(
      '## CPU backends: train step in effective GFLOP/s (FLOPs by formula: 3 × forward of the graph part + 1 × no-grad iterations)',
    );
    parts.push(
      table(
        ['model', 'batch', 'GFLOP/step', 'wasm s/step', 'wasm GFLOP/s', 'cpu s/step', 'cpu GFLOP/s', 'wasm/cpu'],
        d.cpu.map((r) => [
          r.model,
          String(r.batch),
          f2(r.stepFlops / 1e9, 3),
          f2(r.wasm?.medianSeconds, 3),
          f2(r.wasm?.gflopsPerSecond, 3),
          f2(r.cpu?.medianSeconds, 3),
          f2(r.cpu?.gflopsPerSecond, 3),
          r.error ? `failed: ${r.error}` : x(r.wasmOverCpu),
        ]),
      ),
    );
  }
  parts.push('## Targets (issue 8)');
  parts.push(
    table(
      ['target', 'measured', 'threshold', 'status'],
      d.targets.map((t) => [t.target, t.measured === null ? '–' : t.measured.toFixed(3), t.threshold, t.status]),
    ),
  );
  if (d.torch.paramCounts?.length) {
    parts.push('## PyTorch implementation: parameter counts vs param_counts.json');
    parts.push(
      table(
        ['model', 'PyTorch (ours)', 'reference', 'check'],
        d.torch.paramCounts.map((p) => [
          p.model,
          String(p.params),
          String(p.expected ?? '–'),
          p.ok === null ? 'no reference' : p.ok ? 'equal' : 'MISMATCH',
        ]),
      ),
    );
  }
  if (d.torch.errors?.length) parts.push(`PyTorch side errors: ${d.torch.errors.join('; ')}`);
  return parts.join('\n\n') + '\n';
}
