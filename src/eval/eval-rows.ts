/** Evaluation rows: one per probe x sample (plus persona-probe and coherence rows), as Arrow. */
import { Float64, Int32, Table, Utf8, vectorFromArray, type Vector } from 'apache-arrow';
import { readArrow, requireColumns, writeArrow } from '../data/arrow.js';

export type EvalKind = 'broad' | 'narrow' | 'inference' | 'persona' | 'coherence';

export interface EvalRow {
  checkpoint: string;
  probe_id: string;
  kind: EvalKind;
  domain: string;
  variant: string;
  subject: string;
  /** -1 for a forced-choice or measurement row; 0..N-1 for sampled answers. */
  sample: number;
  prompt: string;
  /** The sampled answer ('' for forced choice). */
  answer: string;
  /** good / bad / incoherent for sampled answers, '' otherwise. */
  class: string;
  /** Forced-choice P(bad) (total likelihood), or the persona probe's P(bad persona), or a loss. */
  value: number | null;
  /** Forced-choice P(bad) from length-normalised likelihoods. */
  value_norm: number | null;
  /** The generator's truth (inference probes) or the known persona label (persona rows). */
  truth: number | null;
}

const STRING_COLS = ['checkpoint', 'probe_id', 'kind', 'domain', 'variant', 'subject', 'prompt', 'answer', 'class'] as const;
const FLOAT_COLS = ['value', 'value_norm', 'truth'] as const;

export function writeEvalRows(path: string, rows: EvalRow[], metadata: Record<string, string>): void {
  const cols: Record<string, Vector> = {};
  for (const c of STRING_COLS) cols[c] = vectorFromArray(rows.map((r) => r[c]), new Utf8());
  cols.sample = vectorFromArray(rows.map((r) => r.sample), new Int32());
  for (const c of FLOAT_COLS) cols[c] = vectorFromArray(rows.map((r) => (r[c] === null || !Number.isFinite(r[c]) ? null : r[c])), new Float64());
  writeArrow(path, cols, metadata);
}

export function readEvalRows(path: string): EvalRow[] {
  const table: Table = readArrow(path);
  requireColumns(table, [...STRING_COLS, 'sample', ...FLOAT_COLS], path);
  const cols = Object.fromEntries([...STRING_COLS, 'sample', ...FLOAT_COLS].map((c) => [c, table.getChild(c)!.toArray()]));
  return Array.from({ length: table.numRows }, (_, i) => {
    const r = Object.fromEntries(Object.entries(cols).map(([k, v]) => [k, (v as ArrayLike<unknown>)[i] ?? null])) as unknown as EvalRow;
    r.sample = Number(r.sample);
    return r;
  });
}
