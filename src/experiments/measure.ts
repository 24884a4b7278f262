// Distribution metrics of a sample run against the reference images of its dataset:
//   fd_mnist  Fréchet distance in the shipped MNIST classifier's feature space (never called FID)
//   kid_mnist KID's estimator in the same feature space (never called KID)
//   fid, kid, prdc, is  with the FID Inception network (weights: metricOptions.inceptionWeights or the
//             cache of `fpdm-exp weights fetch inception`), preprocessing metricOptions.fidMode
// Reference images: the first `referenceImages` (default: as many as samples) of the reference split.
import { fromUint8, toUint8 } from '../data/images.js';
import type { Dataset } from '../data/dataset.js';
import { sequentialBatches } from '../data/dataset.js';
import { extractFeatures } from '../metrics/features.js';
import { frechetDistance } from '../metrics/fid.js';
import { FidInception } from '../metrics/inception.js';
import { inceptionScoreFromLogits } from '../metrics/inception_score.js';
import { kernelInceptionDistance } from '../metrics/kid.js';
import { mnistDistances } from '../metrics/mnist_fd.js';
import { precisionRecall } from '../metrics/prdc.js';
import { featureStats } from '../metrics/statistics.js';
import { resolveInceptionWeights } from '../metrics/weights.js';
import { METRIC, METRIC_UNITS, TAG } from '../store/names.js';
import type { MetricInput } from '../store/types.js';
import type { ProgressMode } from './progress.js';
import type { MetricChoice, MetricOptions } from './spec.js';

type Images = { x: Float32Array; shape: [number, number, number, number] };

const referenceCache = new Map<string, Images>();

/** The first n images of the reference dataset, [n, C, H, W] in [−1, 1] (cached per process). */
async function referenceImages(ds: Dataset, n: number): Promise<Images> {
  const id = `${ds.fingerprint}/${n}`;
  const hit = referenceCache.get(id);
  if (hit) return hit;
  const m = Math.min(n, ds.size);
  const per = ds.channels * ds.imageSize * ds.imageSize;
  const x = new Float32Array(m * per);
  for await (const b of sequentialBatches(ds, 256, m)) x.set(b.x, b.start * per);
  const out: Images = { x, shape: [m, ds.channels, ds.imageSize, ds.imageSize] };
  referenceCache.set(id, out);
  return out;
}

/** [N, C, H, W] in [−1, 1] → uint8 RGB [N, 3, H, W] (grey images repeated over 3 channels). */
function toRgbU8(img: Images): { pixels: Uint8Array; shape: [number, number, number, number] } {
  const [n, c, h, w] = img.shape;
  const u8 = toUint8(img.x);
  if (c === 3) return { pixels: u8, shape: [n, 3, h, w] };
  const hw = h * w;
  const out = new Uint8Array(n * 3 * hw);
  for (let i = 0; i < n; i++) for (let k = 0; k < 3; k++) out.set(u8.subarray(i * hw, (i + 1) * hw), (i * 3 + k) * hw);
  return { pixels: out, shape: [n, 3, h, w] };
}

/** The images as they are once written to an 8-bit file and read back into [−1, 1]. */
function asSaved(img: Images): Images {
  return { x: fromUint8(toUint8(img.x)), shape: img.shape };
}

export async function distributionMetrics(
  x: Float32Array,
  shape: [number, number, number, number],
  metrics: MetricChoice[],
  opts: MetricOptions,
  reference: Dataset,
  _progress: ProgressMode,
): Promise<MetricInput[]> {
  const rows: MetricInput[] = [];
  const wanted = new Set(metrics);
  const nRef = opts.referenceImages ?? shape[0];
  if (!['fd_mnist', 'kid_mnist', 'fid', 'kid', 'prdc', 'is'].some((m) => wanted.has(m as MetricChoice))) return rows;
  const fake: Images = { x, shape };
  const real = await referenceImages(reference, nRef);
  const counts = { [TAG.numImages]: shape[0] };
  if (wanted.has('fd_mnist') || wanted.has('kid_mnist')) {
    // on the 8-bit images a user would save (clamped to [−1, 1]), as the Inception metrics below:
    // the classifier's features are unbounded, so an unclamped, diverging sample would dominate μ, Σ
    const tags = { ...counts, reference_images: real.shape[0] };
    const kidOpts = wanted.has('kid_mnist') ? { subsets: opts.kidSubsets, subsetSize: opts.kidSubsetSize } : null;
    const { fd, kid } = await mnistDistances(real, asSaved(fake), { fd: wanted.has('fd_mnist'), kid: kidOpts });
    if (fd !== null) rows.push({ name: METRIC.fdMnist, value: fd, unit: METRIC_UNITS.fd_mnist, tags });
    if (kid)
      rows.push(
        { name: METRIC.kidMnist, value: kid.mean, unit: METRIC_UNITS.kid_mnist, tags },
        { name: METRIC.kidMnistStd, value: kid.std, unit: METRIC_UNITS.kid_mnist_std, tags },
      );
  }
  const inception = ['fid', 'kid', 'prdc', 'is'].filter((m) => wanted.has(m as MetricChoice));
  if (inception.length === 0) return rows;
  const net = FidInception.load(resolveInceptionWeights(opts.inceptionWeights));
  try {
    const f = toRgbU8(fake);
    const r = toRgbU8(real);
    const ff = await extractFeatures(net, f.pixels, f.shape, { mode: opts.fidMode, logits: wanted.has('is') });
    const needReal = inception.some((m) => m !== 'is');
    const rf = needReal ? await extractFeatures(net, r.pixels, r.shape, { mode: opts.fidMode }) : null;
    const tags = { ...counts, [TAG.preprocessing]: opts.fidMode, reference_images: r.shape[0] };
    if (wanted.has('fid') && rf) {
      const a = featureStats(rf.features, rf.n, rf.dim);
      const b = featureStats(ff.features, ff.n, ff.dim);
      rows.push({
        name: METRIC.fid,
        value: frechetDistance(a.mu, a.sigma, b.mu, b.sigma),
        unit: METRIC_UNITS.fid,
        tags,
      });
    }
    if (wanted.has('kid') && rf) {
      const k = kernelInceptionDistance(ff.features, ff.n, rf.features, rf.n, 2048, {
        subsets: opts.kidSubsets,
        subsetSize: opts.kidSubsetSize,
      });
      rows.push(
        { name: METRIC.kid, value: k.mean, unit: METRIC_UNITS.kid, tags },
        { name: METRIC.kidStd, value: k.std, unit: METRIC_UNITS.kid_std, tags },
      );
    }
    if (wanted.has('prdc') && rf) {
      const p = precisionRecall(rf.features, rf.n, ff.features, ff.n, 2048, opts.prdcK);
      rows.push(
        { name: METRIC.precision, value: p.precision, unit: METRIC_UNITS.precision, tags },
        { name: METRIC.recall, value: p.recall, unit: METRIC_UNITS.recall, tags },
      );
    }
    if (wanted.has('is') && ff.logits) {
      const s = inceptionScoreFromLogits(ff.logits, ff.n, 1008);
      rows.push(
        { name: METRIC.inceptionScore, value: s.mean, unit: METRIC_UNITS.is, tags },
        { name: METRIC.inceptionScoreStd, value: s.std, unit: METRIC_UNITS.is_std, tags },
      );
    }
  } finally {
    net.dispose();
  }
  return rows;
}
