// fd_mnist: the Fréchet distance between real and generated images in the feature space of the
// shipped MNIST classifier (128-d penultimate layer, src/metrics/mnist_classifier.ts). A stand-in
// distribution metric for runs without the FID Inception weights; always reported as `fd_mnist`,
// never as FID (values are on a different scale and not comparable with FID).
//
//   images [N, C, H, W] in [−1, 1] → toClassifierInput (grey, 28×28) → features [N, 128]
//     → μ, Σ (float64, N−1) → d² = ‖μ1 − μ2‖² + Tr(Σ1 + Σ2 − 2 √(Σ1Σ2))
import { UserError } from '../util/errors.js';
import { frechetDetails, type FrechetDetails } from './fid.js';
import { kernelInceptionDistance, type KidOptions, type KidResult } from './kid.js';
import { MNIST_FEATURE_DIM, loadMnistClassifier, mnistFeatures, type MnistClassifier } from './mnist_classifier.js';
import { featureStats, type FeatureStats } from './statistics.js';

export interface ImageSet {
  /** [N, C, H, W] float32 in [−1, 1] */
  x: Float32Array;
  shape: readonly number[];
}

/** μ and Σ of the classifier features of a set of images. */
export async function mnistFeatureStats(model: MnistClassifier, images: ImageSet): Promise<FeatureStats> {
  const n = images.shape[0]!;
  if (n < 2) throw new UserError(`fd_mnist needs at least 2 images per set (got ${n})`);
  return featureStats(await mnistFeatures(model, images.x, images.shape), n, MNIST_FEATURE_DIM);
}

export interface FdMnistResult extends FrechetDetails {
  metric: 'fd_mnist';
  featureDim: number;
  nReal: number;
  nFake: number;
}

/** fd_mnist with its parts. `model` defaults to the shipped classifier (loaded and disposed here). */
export async function fdMnistDetails(real: ImageSet, fake: ImageSet, model?: MnistClassifier): Promise<FdMnistResult> {
  const net = model ?? loadMnistClassifier();
  try {
    const a = await mnistFeatureStats(net, real);
    const b = await mnistFeatureStats(net, fake);
    return {
      metric: 'fd_mnist',
      featureDim: MNIST_FEATURE_DIM,
      nReal: a.n,
      nFake: b.n,
      ...frechetDetails(a.mu, a.sigma, b.mu, b.sigma),
    };
  } finally {
    if (!model) net.dispose();
  }
}

/**
 * kid_mnist: KID's estimator (unbiased polynomial-kernel MMD² averaged over random subsets, kid.ts) in
 * the classifier's 128-d feature space; like fd_mnist, never to be compared with Inception KID.
 */
export async function kidMnist(
  real: ImageSet,
  fake: ImageSet,
  opts: KidOptions = {},
  model?: MnistClassifier,
): Promise<KidResult> {
  return (await mnistDistances(real, fake, { fd: false, kid: opts }, model)).kid!;
}

/**
 * fd_mnist and/or kid_mnist (kid: its options, or null for none) from ONE pass of the classifier over
 * each set: the same values as fdMnist and kidMnist.
 */
export async function mnistDistances(
  real: ImageSet,
  fake: ImageSet,
  want: { fd: boolean; kid: KidOptions | null },
  model?: MnistClassifier,
): Promise<{ fd: number | null; kid: KidResult | null }> {
  const net = model ?? loadMnistClassifier();
  try {
    const [a, b] = [await mnistFeatures(net, real.x, real.shape), await mnistFeatures(net, fake.x, fake.shape)];
    const [n, m] = [real.shape[0]!, fake.shape[0]!];
    let fd: number | null = null;
    if (want.fd) {
      if (n < 2 || m < 2) throw new UserError(`fd_mnist needs at least 2 images per set (got ${Math.min(n, m)})`);
      const [sa, sb] = [featureStats(a, n, MNIST_FEATURE_DIM), featureStats(b, m, MNIST_FEATURE_DIM)];
      fd = frechetDetails(sa.mu, sa.sigma, sb.mu, sb.sigma).value;
    }
    const kid = want.kid ? kernelInceptionDistance(b, m, a, n, MNIST_FEATURE_DIM, want.kid) : null;
    return { fd, kid };
  } finally {
    if (!model) net.dispose();
  }
}

/** fd_mnist between two image sets [N, C, H, W] in [−1, 1]. */
export async function fdMnist(real: ImageSet, fake: ImageSet, model?: MnistClassifier): Promise<number> {
  return (await fdMnistDetails(real, fake, model)).value;
}
