/** Benchmark rows: appended to an Arrow file (old rows + new, rewritten atomically), printed as a table, and summarised in Markdown. */
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
  // The products' precision and the machine (src/bench/machine.ts); null in rows written before them.
  'precision', 'ratio_vs_fp32', 'ratio_vs_fp32_min', 'ratio_vs_fp32_max', 'cpu_isa', 'cpu_cores', 'cpu_mhz', 'max_isa', 'matmul_kernel',
  'theoretical_peak_gflops', 'theoretical_peak_formula', 'utilisation_theoretical',
] as const;

const TEXT = new Set(['run_id', 'timestamp', 'engine', 'backend', 'preset', 'device', 'reference', 'node', 'precision', 'cpu_isa', 'max_isa', 'matmul_kernel', 'theoretical_peak_formula']);

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
const pct = (v: BenchValue) => (v === null || v === undefined ? '-' : `${(Number(v) * 100).toFixed(0)}%`);
const ratio = (med: BenchValue, lo: BenchValue, hi: BenchValue) => (med === null || med === undefined ? '-' : `${fmt(med, 2)}x [${fmt(lo, 2)}-${fmt(hi, 2)}]`);

/** The columns of the table and the Markdown summary: header, then the cell of a row. */
const COLUMNS: Array<[string, (r: BenchRow) => string]> = [
  ['engine', (r) => fmt(r.engine)],
  ['backend', (r) => fmt(r.backend)],
  ['prec', (r) => fmt(r.precision ?? 'fp32')],
  ['preset', (r) => fmt(r.preset)],
  ['thr', (r) => fmt(r.threads)],
  ['batch x T', (r) => `${fmt(r.batch)}x${fmt(r.T)}`],
  ['ms/step', (r) => `${fmt(r.step_ms, 1)} [${fmt(r.step_ms_min, 0)}-${fmt(r.step_ms_max, 0)}]`],
  ['tokens/s', (r) => fmt(r.tokens_per_s)],
  ['GFLOP/s', (r) => fmt(r.gflops, 1)],
  ['peak', (r) => fmt(r.peak_gflops, 1)],
  ['util', (r) => pct(r.utilisation)],
  ['theory', (r) => fmt(r.theoretical_peak_gflops, 0)],
  ['util (theory)', (r) => pct(r.utilisation_theoretical)],
  ['fwd tok/s', (r) => fmt(r.forward_tokens_per_s)],
  ['RSS MB', (r) => fmt(r.rss_mb)],
  ['kernels/step (compute)', (r) => (r.compute_kernel_calls === null || r.compute_kernel_calls === undefined ? fmt(r.kernel_calls) : `${fmt(r.kernel_calls)} (${fmt(r.compute_kernel_calls)})`)],
  ['vs ref', (r) => ratio(r.ratio_vs_reference, r.ratio_min, r.ratio_max)],
  ['vs fp32', (r) => ratio(r.ratio_vs_fp32, r.ratio_vs_fp32_min, r.ratio_vs_fp32_max)],
];

/** A plain-text table of rows (stdout). */
export function formatBenchTable(rows: BenchRow[]): string {
  const header = COLUMNS.map(([h]) => h);
  const body = rows.map((r) => COLUMNS.map(([, cell]) => cell(r)));
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i < 4 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...body.map(line)].join('\n');
}

/**
 * One run in Markdown (<out>/bench.md): the machine, the table, what each engine's matmul kernel
 * and theoretical peak are, and the ratios' meaning. `machine` is machine.ts's lines.
 */
export function formatBenchMarkdown(rows: BenchRow[], machine: string[]): string {
  const first = rows[0] ?? {};
  const out = [`# npm run bench: ${fmt(first.preset)}, batch ${fmt(first.batch)} x ${fmt(first.T)}, ${fmt(first.timestamp)}`, '', '## Machine', ''];
  for (const line of machine) out.push(`- ${line}`);
  out.push('', '## Speed (medians over the rounds; [min-max])', '');
  out.push(`| ${COLUMNS.map(([h]) => h).join(' | ')} |`, `|${COLUMNS.map((_, i) => (i < 4 ? '---' : '---:')).join('|')}|`);
  for (const r of rows) out.push(`| ${COLUMNS.map(([, cell]) => cell(r).replace(/\|/g, '\\|')).join(' | ')} |`);
  out.push('');
  for (const r of rows) {
    out.push(`- ${fmt(r.engine)} ${fmt(r.backend)} ${fmt(r.precision ?? 'fp32')}: matmul ${fmt(r.matmul_kernel)}; theoretical peak ${fmt(r.theoretical_peak_formula)}`);
  }
  out.push('', 'peak: the engine\'s measured matmul peak ([2048x512] @ [512x512]); theory: the theoretical peak (an estimate, derived above); util: model GFLOP/s over each. vs ref: PyTorch\'s ms/step over this engine\'s, per round; vs fp32: fp32\'s over bf16\'s, per round.', '');
  return out.join('\n');
}
