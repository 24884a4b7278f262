// The dataset interface every loader implements, and the seeded, resumable batch iterator.
//
// Images come out NCHW float32 in [−1, 1] (x = 2·p/255 − 1 for 8-bit pixels p), labels int32.
// Indices are 0..size−1 in a fixed order documented by each loader.
import { UserError, ensure } from '../util/errors.js';
import { Rng, type RngState } from '../util/rng.js';

export type DatasetKind = 'mnist' | 'folder' | 'synthetic' | 'latents';

export interface Batch {
  /** images, [N, C, H, W], float32 in [−1, 1] */
  x: Float32Array;
  /** class labels, [N]; 0 for every image of an unlabeled dataset */
  y: Int32Array;
  /** [N, C, H, W] */
  shape: [number, number, number, number];
}

export interface Dataset {
  readonly kind: DatasetKind;
  /** human-readable name, e.g. `mnist/train` or the folder path */
  readonly name: string;
  /** number of images */
  readonly size: number;
  /** number of classes; 1 for an unlabeled dataset (every label is 0) */
  readonly numClasses: number;
  /** false when the data carry no class labels (a flat image folder) */
  readonly labeled: boolean;
  /** class names in label order (label i ↔ classNames[i]) */
  readonly classNames: readonly string[];
  /** 1 or 3 for images; the latent channels (4 for the SD VAE) for a latent dataset */
  readonly channels: number;
  /** images are square: imageSize × imageSize */
  readonly imageSize: number;
  /** SHA-256 (hex) identifying the data and its preprocessing; part of run keys and stats caches */
  readonly fingerprint: string;
  /** the images and labels at `indices`, in that order */
  batch(indices: ArrayLike<number>): Promise<Batch>;
}

/** Checks indices against a dataset's size (a bug in the caller otherwise, so a plain Error). */
export function checkIndices(ds: { size: number; name: string }, indices: ArrayLike<number>): void {
  for (let i = 0; i < indices.length; i++) {
    const k = indices[i]!;
    if (!Number.isInteger(k) || k < 0 || k >= ds.size)
      throw new Error(`${ds.name}: index ${k} out of range [0, ${ds.size})`);
  }
}

/** Mirrors every image of a batch left–right in place where `flip[i]` is set. x: [N, C, H, W]. */
export function flipHorizontal(b: Batch, flip: ArrayLike<boolean>): void {
  const [n, c, h, w] = b.shape;
  for (let i = 0; i < n; i++) {
    if (!flip[i]) continue;
    for (let row = 0; row < c * h; row++) {
      const base = (i * c * h + row) * w;
      for (let a = 0, z = w - 1; a < z; a++, z--) {
        const t = b.x[base + a]!;
        b.x[base + a] = b.x[base + z]!;
        b.x[base + z] = t;
      }
    }
  }
}

export interface BatchIteratorOptions {
  batchSize: number;
  /** seed of the epoch permutations (and of the flips) */
  seed: number | string;
  /** random horizontal flips with probability 1/2, as DiT's training transform (default false) */
  hflip?: boolean;
}

/** Everything needed to continue an iteration exactly; JSON-serialisable (goes into checkpoints). */
export interface BatchIteratorState {
  /** 0-based epoch of the next batch */
  epoch: number;
  /** position of the next batch inside this epoch's permutation */
  position: number;
  /** the generator's state just before it drew this epoch's permutation */
  epochRng: RngState;
  batchSize: number;
  datasetSize: number;
}

export interface IteratedBatch extends Batch {
  indices: Int32Array;
  /** epoch this batch belongs to */
  epoch: number;
}

/**
 * Endless shuffled batches: each epoch is a fresh permutation of 0..size−1 drawn from a seeded `Rng`;
 * batches are consecutive slices of it, and an epoch's remainder shorter than `batchSize` is dropped
 * (as the reference's DataLoader with drop_last=True). `state()` after any batch, passed back to the
 * constructor, continues with exactly the batches an uninterrupted iterator would have produced.
 * Flips (if on) come from a generator keyed by (seed, epoch, position), so they resume too.
 */
export class BatchIterator {
  private rng: Rng;
  private epochRng: RngState;
  private perm: Int32Array;
  private epoch: number;
  private position: number;

  constructor(
    private readonly ds: Dataset,
    private readonly opts: BatchIteratorOptions,
    state?: BatchIteratorState,
  ) {
    ensure(
      Number.isInteger(opts.batchSize) && opts.batchSize >= 1,
      `batch size must be a positive integer (got ${opts.batchSize})`,
    );
    ensure(
      opts.batchSize <= ds.size,
      `batch size ${opts.batchSize} is larger than the dataset ${ds.name} (${ds.size} images): use a smaller batch`,
    );
    if (state) {
      if (state.batchSize !== opts.batchSize || state.datasetSize !== ds.size) {
        throw new UserError(
          `cannot resume the data iterator: it was saved with batch size ${state.batchSize} over ${state.datasetSize} images, ` +
            `now batch size ${opts.batchSize} over ${ds.size} images; resume with the original settings`,
        );
      }
      this.rng = Rng.fromState(state.epochRng);
      this.epochRng = this.rng.state();
      this.perm = this.rng.permutation(ds.size);
      this.epoch = state.epoch;
      this.position = state.position;
    } else {
      this.rng = new Rng(opts.seed);
      this.epochRng = this.rng.state();
      this.perm = this.rng.permutation(ds.size);
      this.epoch = 0;
      this.position = 0;
    }
  }

  /** The next batch's indices (advances the iterator). */
  nextIndices(): { indices: Int32Array; epoch: number; position: number } {
    if (this.position + this.opts.batchSize > this.ds.size) {
      this.epoch += 1;
      this.position = 0;
      this.epochRng = this.rng.state();
      this.perm = this.rng.permutation(this.ds.size);
    }
    const position = this.position;
    const indices = this.perm.slice(position, position + this.opts.batchSize);
    this.position += this.opts.batchSize;
    return { indices, epoch: this.epoch, position };
  }

  async next(): Promise<IteratedBatch> {
    const { indices, epoch, position } = this.nextIndices();
    const b = await this.ds.batch(indices);
    if (this.opts.hflip) {
      const r = new Rng(`${String(this.opts.seed)}/hflip/${epoch}/${position}`);
      flipHorizontal(
        b,
        Array.from(indices, () => r.uniform() < 0.5),
      );
    }
    return { ...b, indices, epoch };
  }

  state(): BatchIteratorState {
    return {
      epoch: this.epoch,
      position: this.position,
      epochRng: this.epochRng,
      batchSize: this.opts.batchSize,
      datasetSize: this.ds.size,
    };
  }
}

/** Batches over the dataset in index order (the last one may be short); `limit` caps the images. */
export async function* sequentialBatches(
  ds: Dataset,
  batchSize: number,
  limit = ds.size,
): AsyncGenerator<Batch & { start: number }> {
  ensure(Number.isInteger(batchSize) && batchSize >= 1, `batch size must be a positive integer (got ${batchSize})`);
  const end = Math.min(limit, ds.size);
  for (let start = 0; start < end; start += batchSize) {
    const idx = new Int32Array(Math.min(batchSize, end - start)).map((_, i) => start + i);
    yield { ...(await ds.batch(idx)), start };
  }
}
