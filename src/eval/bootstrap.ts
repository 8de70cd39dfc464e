/**
 * Summary statistics: means with bootstrap 95% intervals, resampling units (probes, seeds) with
 * the project's seeded generator so every interval is reproducible.
 */
import { Rng } from '../util/rng.js';

export interface Interval {
  mean: number;
  lo: number;
  hi: number;
  n: number;
}

export function mean(xs: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < xs.length; i++) s += xs[i];
  return xs.length ? s / xs.length : NaN;
}

/** Linear-interpolated quantile of sorted values (the R-7 / numpy default). */
export function quantile(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

/**
 * Percentile bootstrap of a statistic over units: each replicate resamples the units with
 * replacement and recomputes `stat` on them.
 */
export function bootstrap<T>(units: T[], stat: (sample: T[]) => number, opts: { replicates?: number; seed?: string } = {}): Interval {
  const point = stat(units);
  const n = units.length;
  if (n === 0) return { mean: NaN, lo: NaN, hi: NaN, n: 0 };
  const reps = opts.replicates ?? 1000;
  const rng = new Rng(`bootstrap:${opts.seed ?? ''}`);
  const values = new Float64Array(reps);
  const sample: T[] = new Array(n);
  for (let r = 0; r < reps; r++) {
    for (let i = 0; i < n; i++) sample[i] = units[rng.int(n)];
    values[r] = stat(sample);
  }
  values.sort();
  return { mean: point, lo: quantile(values, 0.025), hi: quantile(values, 0.975), n };
}

export function formatInterval(i: Interval, digits = 3): string {
  if (!Number.isFinite(i.mean)) return 'n/a';
  return `${i.mean.toFixed(digits)} [${i.lo.toFixed(digits)}, ${i.hi.toFixed(digits)}]`;
}
