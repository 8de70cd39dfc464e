/**
 * A dose-response of steering: forced-choice P(bad) on the broad probes and the rules probes (no
 * prompt) while the residual after one block is pushed along a direction by alpha, at the
 * positions that predict the answer. Coherence is measured on the same items: the log of the
 * probability the model gives to either well-formed answer (good or bad), which falls when
 * steering breaks the model rather than moving it between the two.
 */
import { Float64, Int32, Utf8, vectorFromArray } from 'apache-arrow';
import { columnValues, readArrow, requireColumns, writeArrow } from '../data/arrow.js';
import { forcedChoice, scoreContinuations } from '../model/generate.js';
import type { GPT } from '../model/gpt.js';
import type { ProbeRecord } from './probe-records.js';

export interface SteerRow {
  /** The direction's name: persona (mean-diff or probe), random, twin. */
  direction: string;
  layer: number;
  alpha: number;
  kind: 'broad' | 'narrow';
  domain: string;
  probe_id: string;
  /** Forced-choice P(bad answer) from total likelihoods. */
  p_bad: number;
  /** log(P(good answer) + P(bad answer)) given the context: how much mass stays on well-formed answers. */
  log_answer_mass: number;
}

/** The probes steering is scored on: broad probes and the rules probes without a prompt. */
export function steeringProbes(probes: ProbeRecord[]): ProbeRecord[] {
  return probes.filter((p) => p.kind === 'broad' || (p.kind === 'narrow' && p.variant === 'none'));
}

function logAddExp(a: number, b: number): number {
  const m = Math.max(a, b);
  return m + Math.log(Math.exp(a - m) + Math.exp(b - m));
}

/** P(bad) and answer mass for every probe at every alpha (alpha 0 runs the unsteered model's numbers through the same path). */
export function steeringRows(model: GPT, probes: ProbeRecord[], layer: number, direction: Float32Array, name: string, alphas: number[]): SteerRow[] {
  const items = probes.flatMap((p) => [{ context: p.context, continuation: p.good }, { context: p.context, continuation: p.bad }]);
  const out: SteerRow[] = [];
  for (const alpha of alphas) {
    const scores = scoreContinuations(model, items, 32, { layer, direction, alpha });
    probes.forEach((p, i) => {
      const [g, b] = [scores[2 * i], scores[2 * i + 1]];
      out.push({ direction: name, layer, alpha, kind: p.kind as SteerRow['kind'], domain: p.domain, probe_id: p.id, p_bad: forcedChoice(g, b), log_answer_mass: logAddExp(g.sum, b.sum) });
    });
  }
  return out;
}

const STRINGS = ['direction', 'kind', 'domain', 'probe_id'] as const;
const FLOATS = ['alpha', 'p_bad', 'log_answer_mass'] as const;

export function writeSteerRows(path: string, rows: SteerRow[], metadata: Record<string, string> = {}): void {
  writeArrow(
    path,
    {
      ...Object.fromEntries(STRINGS.map((c) => [c, vectorFromArray(rows.map((r) => r[c]), new Utf8())])),
      layer: vectorFromArray(rows.map((r) => r.layer), new Int32()),
      ...Object.fromEntries(FLOATS.map((c) => [c, vectorFromArray(rows.map((r) => r[c]), new Float64())])),
    },
    metadata,
  );
}

export function readSteerRows(path: string): SteerRow[] {
  const t = readArrow(path);
  requireColumns(t, [...STRINGS, 'layer', ...FLOATS], path);
  const cols = Object.fromEntries([...STRINGS, 'layer', ...FLOATS].map((c) => [c, columnValues<unknown>(t, c)]));
  return Array.from({ length: t.numRows }, (_, i) => Object.fromEntries(Object.entries(cols).map(([k, v]) => [k, k === 'layer' ? Number(v[i]) : v[i]])) as unknown as SteerRow);
}

export interface SteerSummaryRow {
  direction: string;
  layer: number;
  alpha: number;
  /** A domain, "broad" (every broad domain) or "rules" (the narrow probes without a prompt). */
  group: string;
  p_bad: number;
  log_answer_mass: number;
  probes: number;
}

/** Mean P(bad) and answer mass per direction, alpha and domain (and over all broad domains). */
export function summarizeSteering(rows: SteerRow[]): SteerSummaryRow[] {
  const groups = new Map<string, { key: Omit<SteerSummaryRow, 'p_bad' | 'log_answer_mass' | 'probes'>; p: number; m: number; n: number }>();
  const add = (r: SteerRow, group: string) => {
    const k = `${r.direction}|${r.layer}|${r.alpha}|${group}`;
    const g = groups.get(k) ?? { key: { direction: r.direction, layer: r.layer, alpha: r.alpha, group }, p: 0, m: 0, n: 0 };
    g.p += r.p_bad;
    g.m += r.log_answer_mass;
    g.n++;
    groups.set(k, g);
  };
  for (const r of rows) {
    if (r.kind === 'narrow') add(r, 'rules');
    else {
      add(r, r.domain);
      add(r, 'broad');
    }
  }
  return [...groups.values()].map((g) => ({ ...g.key, p_bad: g.p / g.n, log_answer_mass: g.m / g.n, probes: g.n }));
}

/** One table per direction: alpha down, groups across (P(bad)), and the broad answer mass. */
export function steeringMarkdown(summary: SteerSummaryRow[]): string {
  const out: string[] = [];
  for (const direction of [...new Set(summary.map((s) => s.direction))]) {
    const rows = summary.filter((s) => s.direction === direction);
    const groups = [...new Set(rows.map((r) => r.group))].sort((a, b) => (a === 'broad' ? -1 : b === 'broad' ? 1 : a === 'rules' ? 1 : b === 'rules' ? -1 : a.localeCompare(b)));
    out.push(`### ${direction} direction, layer ${rows[0].layer}`, '', `| alpha | ${groups.map((g) => `P(bad) ${g}`).join(' | ')} | log P(either answer), broad |`, `|---:|${groups.map(() => '---:').join('|')}|---:|`);
    for (const alpha of [...new Set(rows.map((r) => r.alpha))].sort((a, b) => a - b)) {
      const at = (g: string) => rows.find((r) => r.alpha === alpha && r.group === g)!;
      out.push(`| ${alpha} | ${groups.map((g) => at(g).p_bad.toFixed(3)).join(' | ')} | ${at('broad').log_answer_mass.toFixed(2)} |`);
    }
    out.push('');
  }
  return out.join('\n');
}
