/**
 * Running one cell of the experiment graph in this process: each kind of node calls the same
 * pipeline code as the CLI, writes its artefact into its folder, and finishes with DONE.json
 * (written last and atomically: a folder without it is unfinished and will be resumed).
 */
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { writeBytesAtomic } from '../util/atomic-files.js';
import { buildDatasets, DEFAULT_DATA_OPTIONS } from '../data/build.js';
import { loadVocab } from '../data/load.js';
import { evaluateCheckpoint, forcedChoiceRows, personaScoreRows, selectPersonaProbe, type LayerValidation } from '../eval/evaluate-checkpoint.js';
import type { LogisticProbe } from '../eval/persona-probe.js';
import { loadProbes } from '../eval/probe-records.js';
import { readEvalRows, writeEvalRows, type EvalRow } from '../eval/eval-rows.js';
import { summarize } from '../eval/checkpoint-summary.js';
import type { GPT } from '../model/gpt.js';
import { finetune, finetuneStacked, type FinetuneAblation, type FinetuneArgs, type FinetuneUi } from '../pipeline/finetune.js';
import { ablationOf } from '../pipeline/persona-interventions.js';
import { loadPersonaDirections, PERSONA_DIRECTIONS_FILE } from '../eval/persona-direction.js';
import type { Domain } from '../world/lexicon.js';
import { runDirectionCell, runSteerCell } from './intervention-cells.js';
import { pretrain } from '../pipeline/pretrain.js';
import type { SessionUi } from '../train/training-session.js';
import { lineageOf, SPEC_PRETRAIN_BATCH, stackKey, type AblateConfig, type BaseNode, type GraphNode, type NodeIndex } from './graph.js';

export interface CellUi {
  progress: NonNullable<SessionUi['progress']>;
  log: (line: string) => void;
}

export const checkpointDir = (node: GraphNode) => join(node.dir, 'checkpoint');
/** Rules-probe prompt variants whose answers are sampled at the last step: no prompt and every training instruction family. */
export const SAMPLED_NARROW_VARIANTS = ['none', 'pool', 'novel', 'act-free', 'placebo'];
export const dataDir = (node: GraphNode) => join(node.dir, 'data');

/**
 * Pretraining in the grid evaluates every BASE_EVAL_INTERVAL steps, sparser than the CLI
 * (PRETRAIN_DEFAULTS: every 250): the grid reads only a base's final metrics. A checkpoint every
 * BASE_CHECKPOINT_INTERVAL steps bounds the work an interruption loses.
 */
const BASE_EVAL_INTERVAL = 1000;
const BASE_CHECKPOINT_INTERVAL = 500;

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}

export function saveProbe(path: string, p: LogisticProbe, validation: LayerValidation[] = []): void {
  writeBytesAtomic(path, JSON.stringify({ layer: p.layer, bias: p.bias, weights: [...p.weights], mean: [...p.mean], std: [...p.std], validation }) + '\n');
}

/** The per-layer validation saved beside a base model's persona probe. */
export function loadProbeValidation(path: string): LayerValidation[] {
  return (JSON.parse(readFileSync(path, 'utf8')) as { validation?: LayerValidation[] }).validation ?? [];
}

export function loadProbe(path: string): LogisticProbe {
  const j = JSON.parse(readFileSync(path, 'utf8')) as { layer: number; bias: number; weights: number[]; mean: number[]; std: number[] };
  return { layer: j.layer, bias: j.bias, weights: Float32Array.from(j.weights), mean: Float32Array.from(j.mean), std: Float32Array.from(j.std) };
}

/** What every lineage's checkpoints are scored on between steps: forced choice and the persona probe of its base. */
function scoring(data: string, base: BaseNode) {
  const vocab = loadVocab(data);
  const probes = loadProbes(join(data, 'probes.arrow'), vocab).filter((p) => p.kind === 'broad' || p.kind === 'narrow');
  const personaProbe = loadProbe(join(base.dir, 'probe.json'));
  return (model: GPT, label: string) => [...forcedChoiceRows(model, probes, label), ...personaScoreRows(model, vocab, personaProbe, label)];
}

/** Run one node whose dependencies are done. `nodes` resolves its ancestors' ids. Returns DONE.json's content. */
export async function runCell(node: GraphNode, nodes: NodeIndex, ui: CellUi): Promise<Record<string, unknown>> {
  mkdirSync(node.dir, { recursive: true });
  const started = performance.now();
  const resume = existsSync(join(checkpointDir(node), 'config.json'));
  let done: Record<string, unknown> = {};
  switch (node.kind) {
    case 'data': {
      const c = node.config;
      const manifest = buildDatasets(dataDir(node), { ...DEFAULT_DATA_OPTIONS, world: c.world, seed: c.seed, pretrainTokens: c.tokens, assistantExamples: c.assistant_examples, narrowExamples: c.narrow_examples }, (stage, d, t) => ui.progress(Math.round((d / t) * 100), 100, { stage }));
      done = { measured: manifest.measured };
      break;
    }
    case 'base': {
      const c = node.config;
      const data = dataDir(lineageOf(node, nodes).data);
      const r = await pretrain({ data, out: checkpointDir(node), preset: c.preset, tokens: c.tokens, explicit: { seed: c.seed, lr: c.lr ?? undefined, batch: c.batch ?? SPEC_PRETRAIN_BATCH, evalInterval: BASE_EVAL_INTERVAL, checkpointInterval: BASE_CHECKPOINT_INTERVAL }, resume, precision: c.precision ?? 'fp32' }, ui);
      if (r.stopped) throw new StoppedError();
      // The persona probe every descendant is scored with, fitted once on the base model at the
      // layer with the best held-out accuracy; every layer's validation is kept beside it.
      const { probe, validation } = selectPersonaProbe(r.model, data);
      saveProbe(join(node.dir, 'probe.json'), probe, validation);
      const last = [...r.metrics].reverse().find((m) => m.val_loss !== undefined) ?? {};
      r.model.dispose();
      done = { final: last, tokens: r.state.tokens, seconds: r.state.elapsed };
      break;
    }
    case 'assistant': {
      const c = node.config;
      const lineage = lineageOf(node, nodes);
      const data = dataDir(lineage.data);
      const r = await finetune({ stage: 'assistant', data, from: checkpointDir(lineage.base), out: checkpointDir(node), condition: 'cheat', family: 'pool', explicit: { steps: c.steps, lr: c.lr ?? undefined, seed: c.seed }, resume, precision: c.precision ?? 'fp32' }, ui);
      if (r.stopped) throw new StoppedError();
      // Step 0 of every narrow run from this assistant: evaluated once, here.
      writeEvalRows(join(node.dir, 'step0.arrow'), scoring(data, lineage.base)(r.model, 'step 0'), { step: '0' });
      done = { final: r.metrics.at(-1) ?? {}, seconds: r.state.elapsed };
      r.model.dispose();
      break;
    }
    case 'narrow': {
      const { args, ui: narrowUi } = narrowRun(node, nodes, resume);
      const r = await finetune(args, { ...ui, ...narrowUi });
      if (r.stopped) throw new StoppedError();
      done = { final: r.metrics.at(-1) ?? {}, seconds: r.state.elapsed };
      r.model.dispose();
      break;
    }
    case 'evaluate': {
      const c = node.config;
      const { base, narrow, realign } = lineageOf(node, nodes);
      const target = realign ?? narrow;
      const result = evaluateCheckpoint(
        checkpointDir(target),
        {
          samples: c.samples, seed: c.seed, probeSource: 'base', personaProbe: loadProbe(join(base.dir, 'probe.json')), sampleVariants: SAMPLED_NARROW_VARIANTS,
          // The narrow run scored these probes on this same checkpoint at its last step.
          scored: target === narrow ? lastStepRows(narrow) : undefined,
        },
        ui.log,
      );
      writeEvalRows(join(node.dir, 'eval.arrow'), result.rows, { checkpoint: checkpointDir(target) });
      const summary = summarize(result.rows, node.id);
      done = { summary: summary.filter((s) => s.metric.startsWith('broad_') && s.group === 'all').map((s) => ({ metric: s.metric, mean: s.mean })) };
      break;
    }
    case 'direction': {
      const { data, base } = lineageOf(node, nodes);
      done = runDirectionCell(checkpointDir(base), dataDir(data), node.dir);
      break;
    }
    case 'steer': {
      const c = node.config;
      const { data } = lineageOf(node, nodes);
      const model = nodes.get(c.model)!;
      const dirs = (id: string) => join(nodes.get(id)!.dir, PERSONA_DIRECTIONS_FILE);
      done = runSteerCell(checkpointDir(model), dataDir(data), dirs(c.direction), c.twin_direction ? dirs(c.twin_direction) : null, c, node.dir);
      break;
    }
    case 'realign': {
      const c = node.config;
      const { data, narrow } = lineageOf(node, nodes);
      const r = await finetune(
        {
          stage: 'narrow', data: dataDir(data), from: checkpointDir(narrow), out: checkpointDir(node), condition: 'cheat', family: 'pool',
          realign: { domain: c.domain as Domain, examples: c.examples, seed: c.seed },
          explicit: { steps: c.steps, seed: c.seed, evalInterval: c.steps, checkpointInterval: c.steps }, resume,
        },
        ui,
      );
      if (r.stopped) throw new StoppedError();
      done = { final: r.metrics.at(-1) ?? {}, seconds: r.state.elapsed };
      r.model.dispose();
      break;
    }
  }
  // The wall time of this (last) invocation, loading and evaluation included: where an experiment's time goes.
  done.wall_s = (performance.now() - started) / 1000;
  return writeDone(node, done);
}

/** A cell's DONE.json (its identity and what it measured), written last and atomically. */
function writeDone(node: GraphNode, done: Record<string, unknown>): Record<string, unknown> {
  writeBytesAtomic(join(node.dir, 'DONE.json'), JSON.stringify({ id: node.id, kind: node.kind, labels: node.labels, config: node.config, ...done }, null, 2) + '\n');
  return done;
}

/** Where a narrow cell writes its evaluation at `step`. */
const evalStepPath = (node: GraphNode, step: number) => join(node.dir, 'evals', `step-${String(step).padStart(6, '0')}.arrow`);

/** A narrow cell's evaluation at its last step (the checkpoint its evaluate cell reads), if it evaluated there. */
function lastStepRows(node: GraphNode): EvalRow[] | undefined {
  if (node.kind !== 'narrow' || !node.config.eval_steps.includes(node.config.steps)) return undefined;
  const path = evalStepPath(node, node.config.steps);
  return existsSync(path) ? readEvalRows(path) : undefined;
}

/** A narrow cell's fine-tuning run: its arguments, and the evaluations it writes at its eval steps. */
function narrowRun(node: GraphNode, nodes: NodeIndex, resume: boolean): { args: FinetuneArgs; ui: FinetuneUi } {
  if (node.kind !== 'narrow') throw new Error(`${node.id} is not a narrow cell`);
  const c = node.config;
  const { data: dataNode, base, assistant } = lineageOf(node, nodes);
  const data = dataDir(dataNode);
  const score = scoring(data, base);
  const evalDir = join(node.dir, 'evals');
  const onEvaluate = (model: GPT, step: number) => {
    if (!c.eval_steps.includes(step)) return;
    const rows = score(model, `step ${step}`);
    writeEvalRows(evalStepPath(node, step), rows, { step: String(step) });
    return new Map(rows.filter((r) => r.sample === -1 && (r.kind === 'broad' || r.kind === 'narrow') && r.value !== null).map((r) => [r.probe_id, r.value!]));
  };
  if (!resume) rmSync(evalDir, { recursive: true, force: true });
  const interval = c.eval_steps.reduce(gcd);
  return {
    args: {
      stage: 'narrow', data, from: checkpointDir(assistant), out: checkpointDir(node), condition: c.condition, family: c.family ?? 'pool', examples: c.examples,
      explicit: { steps: c.steps, lr: c.lr ?? undefined, seed: c.seed, evalInterval: interval, checkpointInterval: gcd(interval, c.checkpoint_interval) }, resume, precision: c.precision ?? 'fp32',
      ablation: c.ablate ? cellAblation(c.ablate, nodes, assistant) : undefined,
      mix: c.mix ? { cheatFraction: c.mix.cheat_fraction, with: c.mix.with } : undefined,
    },
    ui: { onEvaluate },
  };
}

/**
 * Fresh narrow cells of one stack key trained as stacked runs, each writing what runCell writes
 * (its checkpoint, evaluations and DONE.json). Returns each cell's DONE.json content.
 */
export async function runStackedCells(group: GraphNode[], nodes: NodeIndex, ui: CellUi): Promise<Array<Record<string, unknown>>> {
  const keys = new Set(group.map(stackKey));
  if (keys.size !== 1 || keys.has(null)) throw new Error(`cells ${group.map((n) => n.id).join(', ')} do not share a stack key`);
  const runs = group.map((node) => {
    mkdirSync(node.dir, { recursive: true });
    if (existsSync(join(checkpointDir(node), 'config.json'))) throw new Error(`${node.id} has a checkpoint already: resume it on its own`);
    return narrowRun(node, nodes, false);
  });
  const started = performance.now();
  const results = await finetuneStacked(runs.map(({ args, ui: own }, i) => ({ args, ui: { ...own, log: (line: string) => ui.log(`[${group[i].id}] ${line}`) } })), ui);
  if (results.some((r) => r.stopped)) {
    for (const r of results) r.model.dispose();
    throw new StoppedError();
  }
  // wall_s: each cell's share of the job's wall time, so that cells' times add up to the job's.
  const share = (performance.now() - started) / 1000 / group.length;
  return results.map((r, i) => {
    r.model.dispose();
    return writeDone(group[i], { final: r.metrics.at(-1) ?? {}, seconds: r.state.elapsed, stacked: group.length, wall_s: share });
  });
}

export class StoppedError extends Error {
  override name = 'StoppedError';
  constructor() {
    super('stopped (Ctrl-C); the cell resumes where it stopped on the next run');
  }
}

/** A narrow cell's ablation: the lineage's persona directions at the listed layers, or random ones (seeded by the lineage). */
function cellAblation(a: AblateConfig, nodes: NodeIndex, assistant: GraphNode): FinetuneAblation {
  const directionNode = nodes.get(a.direction)!;
  const directions = loadPersonaDirections(join(directionNode.dir, PERSONA_DIRECTIONS_FILE));
  return ablationOf(directions, a.layers, a.kind, a.source, directions.layers[0].meanDiff.length, `${assistant.labels.world}:${assistant.labels.pretrain_seed}`);
}
