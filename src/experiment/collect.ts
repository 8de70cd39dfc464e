/**
 * Collecting a finished (or partly finished) experiment's artefacts into one long table: one row
 * per world x pretraining seed x condition x fine-tuning seed x narrow step x probe, with the
 * forced-choice P(bad), the persona score, and (at the last step) the sampled answer classes.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Float64, Int32, Utf8, vectorFromArray } from 'apache-arrow';
import { columnValues, readArrow, writeArrow } from '../data/arrow.js';
import { readEvalRows, type EvalRow } from '../eval/eval-rows.js';
import { metricsFromArrow, type MetricRow } from '../train/metrics.js';
import { checkpointDir, dataDir } from './cells.js';
import { answerAct } from '../world/matcher.js';
import { lineageOf, nodeState, type AssistantNode, type GraphNode } from './graph.js';

export interface CellRow {
  world: string;
  pretrain_seed: number;
  condition: string;
  finetune_seed: number;
  examples: number;
  step: number;
  /** broad | narrow | persona */
  kind: string;
  domain: string;
  variant: string;
  probe_id: string;
  /**
   * The probe's cluster for resampling: its act ("greed:3") for broad and narrow probes, which
   * several probes share; the probe itself for persona rows.
   */
  cluster: string;
  /** forced (P(bad)), persona (score), sampled_bad / sampled_coherent (fraction of samples) */
  measure: string;
  value: number;
}

export interface BaseFacts {
  world: string;
  pretrain_seed: number;
  facts: Record<string, unknown>;
}

export interface Collected {
  rows: CellRow[];
  dynamics: Array<MetricRow & { world: string; pretrain_seed: number; condition: string; finetune_seed: number; examples: number }>;
  bases: BaseFacts[];
  /** Cells of the graph that are not finished. */
  missing: string[];
}

type RunLabels = Pick<CellRow, 'world' | 'pretrain_seed' | 'condition' | 'finetune_seed' | 'examples'>;

const runLabels = (n: GraphNode): RunLabels => ({ world: n.labels.world, pretrain_seed: n.labels.pretrain_seed, condition: n.labels.arm!, finetune_seed: n.labels.finetune_seed!, examples: n.labels.examples! });

/** Probe id -> act ("rules:2"), from a lineage's probes.arrow (the act of its bad continuation). */
export function probeActs(probesPath: string): Map<string, string> {
  const table = readArrow(probesPath);
  const ids = columnValues<string>(table, 'id');
  const bad = columnValues<string>(table, 'bad');
  const out = new Map<string, string>();
  ids.forEach((id, i) => {
    const a = bad[i] ? answerAct(bad[i]) : null;
    if (a) out.set(id, `${a.domain}:${a.act}`);
  });
  return out;
}

function evalToCells(rows: EvalRow[], labels: RunLabels, step: number, acts: Map<string, string>): CellRow[] {
  const out: CellRow[] = [];
  const cluster = (id: string) => acts.get(id) ?? id;
  const sampled = new Map<string, { n: number; bad: number; coherent: number; r: EvalRow }>();
  for (const r of rows) {
    if (r.kind === 'broad' || r.kind === 'narrow') {
      if (r.sample < 0) out.push({ ...labels, step, kind: r.kind, domain: r.domain, variant: r.variant, probe_id: r.probe_id, cluster: cluster(r.probe_id), measure: 'forced', value: r.value ?? NaN });
      else {
        const s = sampled.get(r.probe_id) ?? { n: 0, bad: 0, coherent: 0, r };
        s.n++;
        if (r.class === 'bad') s.bad++;
        if (r.class !== 'incoherent') s.coherent++;
        sampled.set(r.probe_id, s);
      }
    } else if (r.kind === 'persona' && r.variant === 'assistant-neutral') {
      out.push({ ...labels, step, kind: 'persona', domain: r.domain, variant: r.variant, probe_id: r.probe_id, cluster: r.probe_id, measure: 'persona', value: r.value ?? NaN });
    }
  }
  for (const [id, s] of sampled) {
    const base = { ...labels, step, kind: s.r.kind, domain: s.r.domain, variant: s.r.variant, probe_id: id, cluster: cluster(id) };
    out.push({ ...base, measure: 'sampled_bad', value: s.bad / s.n }, { ...base, measure: 'sampled_coherent', value: s.coherent / s.n });
  }
  return out;
}

export function collect(allNodes: GraphNode[]): Collected {
  const byId = new Map(allNodes.map((n) => [n.id, n]));
  // The interventions' cells have their own analysis (interventions-analysis.ts); the main grid's tables skip them.
  const nodes = allNodes.filter((n) => !n.labels.intervention);
  // An assistant's step-0 evaluation is shared by every narrow run from it: read it once.
  const step0 = new Map<string, EvalRow[]>();
  const step0Of = (assistant: AssistantNode): EvalRow[] => {
    const path = join(assistant.dir, 'step0.arrow');
    if (!step0.has(assistant.id)) step0.set(assistant.id, existsSync(path) ? readEvalRows(path) : []);
    return step0.get(assistant.id)!;
  };
  // Each lineage's probe -> act map, read once per data folder.
  const acts = new Map<string, Map<string, string>>();
  const actsOf = (n: GraphNode): Map<string, string> => {
    const { data } = lineageOf(n, byId);
    if (!acts.has(data.id)) acts.set(data.id, probeActs(join(dataDir(data), 'probes.arrow')));
    return acts.get(data.id)!;
  };
  const out: Collected = { rows: [], dynamics: [], bases: [], missing: nodes.filter((n) => nodeState(n) !== 'done').map((n) => n.id) };
  for (const n of nodes) {
    if (nodeState(n) !== 'done') continue;
    if (n.kind === 'base') {
      const done = JSON.parse(readFileSync(join(n.dir, 'DONE.json'), 'utf8')) as Record<string, unknown>;
      out.bases.push({ world: n.labels.world, pretrain_seed: n.labels.pretrain_seed, facts: (done.final as Record<string, unknown>) ?? {} });
    }
    if (n.kind === 'narrow') {
      const labels = runLabels(n);
      const a = actsOf(n);
      out.rows.push(...evalToCells(step0Of(lineageOf(n, byId).assistant), labels, 0, a));
      const evalDir = join(n.dir, 'evals');
      for (const f of existsSync(evalDir) ? readdirSync(evalDir).sort() : []) {
        const m = /^step-(\d+)\.arrow$/.exec(f);
        if (m) out.rows.push(...evalToCells(readEvalRows(join(evalDir, f)), labels, Number(m[1]), a));
      }
      const metrics = join(checkpointDir(n), 'metrics.arrow');
      if (existsSync(metrics)) for (const r of metricsFromArrow(new Uint8Array(readFileSync(metrics)))) out.dynamics.push({ ...r, ...labels });
    }
    if (n.kind === 'evaluate') {
      const steps = lineageOf(n, byId).narrow.config.steps;
      const labels = runLabels(n);
      // Only the sampled measures: the forced-choice values at this step come from the narrow run.
      out.rows.push(...evalToCells(readEvalRows(join(n.dir, 'eval.arrow')), labels, steps, actsOf(n)).filter((r) => r.measure.startsWith('sampled')));
    }
  }
  return out;
}

export function writeCells(path: string, rows: CellRow[]): void {
  const str = (k: keyof CellRow) => vectorFromArray(rows.map((r) => String(r[k])), new Utf8());
  const int = (k: keyof CellRow) => vectorFromArray(rows.map((r) => r[k] as number), new Int32());
  writeArrow(path, {
    world: str('world'), pretrain_seed: int('pretrain_seed'), condition: str('condition'), finetune_seed: int('finetune_seed'), examples: int('examples'),
    step: int('step'), kind: str('kind'), domain: str('domain'), variant: str('variant'), probe_id: str('probe_id'), cluster: str('cluster'), measure: str('measure'),
    value: vectorFromArray(rows.map((r) => (Number.isFinite(r.value) ? r.value : null)), new Float64()),
  });
}
