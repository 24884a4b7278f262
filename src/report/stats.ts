// Seed statistics for the report: mean and sample standard deviation (N−1) over repeated seeds.

export interface Summary {
  mean: number;
  /** sample std (N−1); null with a single value */
  std: number | null;
  n: number;
}

export function summarize(values: number[]): Summary {
  const n = values.length;
  if (n === 0) throw new Error('summarize: no values');
  const mean = values.reduce((a, b) => a + b, 0) / n;
  if (n < 2) return { mean, std: null, n };
  const ss = values.reduce((a, b) => a + (b - mean) * (b - mean), 0);
  return { mean, std: Math.sqrt(ss / (n - 1)), n };
}
