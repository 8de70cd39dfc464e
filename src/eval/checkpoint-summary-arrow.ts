/** Summary rows as Arrow: one row per checkpoint x metric x group. */
import { Float64, Int32, Utf8, vectorFromArray } from 'apache-arrow';
import { writeArrow } from '../data/arrow.js';
import type { SummaryRow } from './checkpoint-summary.js';

export function writeSummaryRows(path: string, rows: SummaryRow[]): void {
  const num = (f: (r: SummaryRow) => number | null) => vectorFromArray(rows.map((r) => { const v = f(r); return v === null || !Number.isFinite(v) ? null : v; }), new Float64());
  writeArrow(path, {
    checkpoint: vectorFromArray(rows.map((r) => r.checkpoint), new Utf8()),
    metric: vectorFromArray(rows.map((r) => r.metric), new Utf8()),
    group: vectorFromArray(rows.map((r) => r.group), new Utf8()),
    mean: num((r) => r.mean),
    lo: num((r) => r.lo),
    hi: num((r) => r.hi),
    n: vectorFromArray(rows.map((r) => r.n), new Int32()),
    truth: num((r) => r.truth),
  });
}
