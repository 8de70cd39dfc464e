/** Benchmark rows: appended to an Arrow file (old rows + new, rewritten atomically) and printed as a table. */
import { existsSync } from 'node:fs';
import { Float64, Utf8, vectorFromArray, type Vector } from 'apache-arrow';
import { readArrow, writeArrow } from '../data/arrow.js';

export type BenchValue = string | number | null;

/** One measured engine in one run (see the column list in BENCH_COLUMNS). */
export interface BenchRow {
  [column: string]: BenchValue;
}

/** The columns every row has, in file order; old files with other columns keep theirs. */
export const BENCH_COLUMNS = [
  'run_id', 'timestamp', 'engine', 'backend', 'preset', 'device', 'threads', 'batch', 'T', 'params', 'flops_per_token',
  'steps', 'repeats', 'step_ms', 'step_ms_min', 'step_ms_max', 'tokens_per_s', 'gflops', 'peak_gflops', 'utilisation',
  'rss_mb', 'tf_peak_mb', 'forward_tokens_per_s', 'kernel_calls', 'compute_kernel_calls', 'native_fallback_calls', 'loss', 'reference',
  'ratio_vs_reference', 'ratio_min', 'ratio_max', 'forward_ratio_vs_reference', 'node',
] as const;

const TEXT = new Set(['run_id', 'timestamp', 'engine', 'backend', 'preset', 'device', 'reference', 'node']);

export function readBenchRows(path: string): BenchRow[] {
  if (!existsSync(path)) return [];
  const table = readArrow(path);
  const names = table.schema.fields.map((f) => f.name);
  // get(i), not toArray(): a Float64 column's array shows nulls as 0.
  const cols = names.map((n) => table.getChild(n)!);
  return Array.from({ length: table.numRows }, (_, i) => {
    const row: BenchRow = {};
    names.forEach((n, j) => {
      const v = cols[j].get(i) as unknown;
      row[n] = v === undefined || v === null ? null : typeof v === 'bigint' ? Number(v) : (v as BenchValue);
    });
    return row;
  });
}

/** Append rows: the file is rewritten with the old rows and the new ones (columns united). */
export function appendBenchRows(path: string, rows: BenchRow[]): BenchRow[] {
  const all = [...readBenchRows(path), ...rows];
  const keys: string[] = [...BENCH_COLUMNS];
  for (const r of all) for (const k of Object.keys(r)) if (!keys.includes(k)) keys.push(k);
  const cols: Record<string, Vector> = {};
  for (const k of keys) {
    const values = all.map((r) => r[k] ?? null);
    const text = TEXT.has(k) || values.some((v) => typeof v === 'string');
    cols[k] = text
      ? vectorFromArray(values.map((v) => (v === null ? null : String(v))), new Utf8())
      : vectorFromArray(values.map((v) => (v === null || !Number.isFinite(v as number) ? null : (v as number))), new Float64());
  }
  writeArrow(path, cols, { description: 'npm run bench: one row per engine per run; medians over repeats (src/bench/bench.ts)' });
  return all;
}

const fmt = (v: BenchValue, digits = 0): string => (v === null || v === undefined || (typeof v === 'number' && !Number.isFinite(v)) ? '-' : typeof v === 'number' ? v.toFixed(digits) : v);

/** A plain-text table of rows (stdout). */
export function formatBenchTable(rows: BenchRow[]): string {
  const header = ['engine', 'backend', 'preset', 'thr', 'batch x T', 'ms/step', 'tokens/s', 'GFLOP/s', 'peak', 'util', 'fwd tok/s', 'RSS MB', 'kernels/step (compute)', 'vs ref'];
  const body = rows.map((r) => [
    fmt(r.engine), fmt(r.backend), fmt(r.preset), fmt(r.threads), `${fmt(r.batch)}x${fmt(r.T)}`,
    `${fmt(r.step_ms, 1)} [${fmt(r.step_ms_min, 0)}-${fmt(r.step_ms_max, 0)}]`, fmt(r.tokens_per_s), fmt(r.gflops, 1), fmt(r.peak_gflops, 1),
    r.utilisation === null ? '-' : `${(Number(r.utilisation) * 100).toFixed(0)}%`, fmt(r.forward_tokens_per_s), fmt(r.rss_mb),
    r.compute_kernel_calls === null || r.compute_kernel_calls === undefined ? fmt(r.kernel_calls) : `${fmt(r.kernel_calls)} (${fmt(r.compute_kernel_calls)})`,
    r.ratio_vs_reference === null ? '-' : `${fmt(r.ratio_vs_reference, 2)}x [${fmt(r.ratio_min, 2)}-${fmt(r.ratio_max, 2)}]`,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i < 3 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...body.map(line)].join('\n');
}
