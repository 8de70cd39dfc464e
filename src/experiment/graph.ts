/**
 * The experiment graph: data -> base -> assistant -> narrow (condition x seed) -> evaluate. Each
 * node's folder is named by a hash of its configuration and its parents', so a finished artefact
 * is reused by any later run or experiment with the same configuration, and a changed setting
 * makes a new one.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Precision } from '../backend/product-precision.js';
import type { WorldConfig } from '../world/world-config.js';
import type { Condition, InstructionFamily } from '../world/finetune-sets.js';
import type { DirectionSource } from '../eval/persona-direction.js';
import { loadModelPreset } from '../model/model-config.js';
import { armsOf, expandWorlds, type ExperimentSpec } from './spec.js';

/** Bump when a change in the code makes old artefacts incomparable. */
export const ARTEFACT_VERSION = 3;

export type NodeKind = 'data' | 'base' | 'assistant' | 'narrow' | 'evaluate' | 'direction' | 'steer' | 'realign';

export interface NodeLabels {
  world: string;
  pretrain_seed: number;
  /** The narrow arm ("fair", "cheat", "cheat+act-free", ...): the condition column of every table. */
  arm?: string;
  condition?: Condition;
  finetune_seed?: number;
  examples?: number;
  /** Cells of the spec's interventions carry which one (direction, steer, ablate-persona, ...); the main tables skip them. */
  intervention?: string;
  /** The intervention's setting in words (a partner, a domain) and its number (a fraction, N). */
  setting?: string;
  value?: number;
}

/*
 * Each kind's config is everything that determines its artefact, and names its parent's id (a
 * changed parent makes a new child); the cell's id is a hash of the kind and the config, so these
 * shapes are the cells' identity: changing a field's name or value makes new cells.
 */

export interface DataNodeConfig {
  world: WorldConfig;
  seed: number;
  tokens: number;
  assistant_examples: number;
  narrow_examples: number;
}

export interface BaseNodeConfig {
  /** The data node this model is pretrained on. */
  data: string;
  preset: string;
  tokens: number;
  lr: number | null;
  seed: number;
  /** bf16 products (spec.precision); absent for fp32, so that fp32 cells keep their ids. */
  precision?: Precision;
  /** Sequences per step (spec.pretrain.batch); absent for SPEC_PRETRAIN_BATCH, so that cells from before the field keep their ids. */
  batch?: number;
}

/**
 * The pretraining batch of a spec that names none: 16, what every base cell trained with before
 * specs could set it (the CLI's default is PRETRAIN_DEFAULTS.batch; a spec states its own).
 */
export const SPEC_PRETRAIN_BATCH = 16;

export interface AssistantNodeConfig {
  /** The base node fine-tuned into the assistant. */
  base: string;
  steps: number;
  lr: number | null;
  seed: number;
  /** bf16 products (spec.precision); absent for fp32, so that fp32 cells keep their ids. */
  precision?: Precision;
}

export interface NarrowNodeConfig {
  /** The assistant node fine-tuned on the narrow set. */
  assistant: string;
  condition: Condition;
  /** The instruction family (cheat-inoculated only). */
  family?: InstructionFamily;
  seed: number;
  steps: number;
  lr: number | null;
  examples: number;
  eval_steps: number[];
  checkpoint_interval: number;
  /** Interventions only: an ablation during training, or a mix of cheat and other examples. */
  ablate?: AblateConfig;
  mix?: { cheat_fraction: number; with: 'fair' | 'neutral' };
  /** bf16 products (spec.precision); absent for fp32, so that fp32 cells keep their ids. */
  precision?: Precision;
}

/** An ablation during a narrow run: `direction` is the direction node whose vectors are projected out (persona), or the lineage's (random: its dimension only). */
export interface AblateConfig {
  kind: 'persona' | 'random';
  layers: number[];
  source: DirectionSource;
  direction: string;
}

export interface DirectionNodeConfig {
  /** The base node whose persona directions are computed. */
  base: string;
}

export interface SteerNodeConfig {
  /** The assistant or narrow node whose final checkpoint is steered. */
  model: string;
  /** The lineage's direction node, and the rho-0 twin's (the twin-direction control) when there is one. */
  direction: string;
  twin_direction: string | null;
  layer: number;
  alphas: number[];
  source: DirectionSource;
  random_seed: string;
}

export interface RealignNodeConfig {
  /** The narrow (cheat) node re-aligned. */
  narrow: string;
  domain: string;
  examples: number;
  steps: number;
  seed: number;
}

export interface EvaluateNodeConfig {
  /** The narrow (or re-alignment) node whose final checkpoint is evaluated. */
  narrow: string;
  samples: number;
  seed: number;
}

interface NodeCommon {
  id: string;
  /** The parent's id, or none for data: what the scheduler waits for. */
  deps: string[];
  /** The artefact folder. */
  dir: string;
  labels: NodeLabels;
  /** Relative cost in CELL_COST's units, for scheduling. */
  cost: number;
}

export interface DataNode extends NodeCommon { kind: 'data'; config: DataNodeConfig }
export interface BaseNode extends NodeCommon { kind: 'base'; config: BaseNodeConfig }
export interface AssistantNode extends NodeCommon { kind: 'assistant'; config: AssistantNodeConfig }
export interface NarrowNode extends NodeCommon { kind: 'narrow'; config: NarrowNodeConfig }
export interface EvaluateNode extends NodeCommon { kind: 'evaluate'; config: EvaluateNodeConfig }
export interface DirectionNode extends NodeCommon { kind: 'direction'; config: DirectionNodeConfig }
export interface SteerNode extends NodeCommon { kind: 'steer'; config: SteerNodeConfig }
export interface RealignNode extends NodeCommon { kind: 'realign'; config: RealignNodeConfig }
export type GraphNode = DataNode | BaseNode | AssistantNode | NarrowNode | EvaluateNode | DirectionNode | SteerNode | RealignNode;
type NodeOfKind<K extends NodeKind> = Extract<GraphNode, { kind: K }>;

/** The node's parent id (its config names it), or null for a data node. */
export function parentId(node: GraphNode): string | null {
  switch (node.kind) {
    case 'data': return null;
    case 'base': return node.config.data;
    case 'assistant': return node.config.base;
    case 'narrow': return node.config.assistant;
    case 'evaluate': return node.config.narrow;
    case 'direction': return node.config.base;
    case 'steer': return node.config.model;
    case 'realign': return node.config.narrow;
  }
}

/** Every node a node waits for: its parent, and the direction nodes an intervention reads. */
export function depsOf(node: GraphNode): string[] {
  const parent = parentId(node);
  const extra = node.kind === 'steer' ? [node.config.direction, node.config.twin_direction] : node.kind === 'narrow' ? [node.config.ablate?.direction] : [];
  return [...(parent === null ? [] : [parent]), ...extra.filter((x): x is string => typeof x === 'string')];
}

/** The stages a node descends from (and the node itself, except an evaluate node, which only reads its narrow run). */
export interface Lineage {
  data: DataNode;
  base: BaseNode;
  assistant: AssistantNode;
  narrow: NarrowNode;
  /** A re-alignment run (its narrow is the cheat run it starts from). */
  realign?: RealignNode;
}

export type NodeIndex = ReadonlyMap<string, GraphNode>;

function nodeOf<K extends NodeKind>(byId: NodeIndex, id: string, kind: K): NodeOfKind<K> {
  const n = byId.get(id);
  if (n?.kind !== kind) throw new Error(`experiment graph: ${id} is ${n ? `a ${n.kind} node` : 'not in the graph'}, expected a ${kind} node`);
  return n as NodeOfKind<K>;
}

/** A node's ancestors by name, resolved through `byId`: `lineageOf(evaluate, byId).base` is the model its probe comes from. */
export function lineageOf(node: DataNode, byId: NodeIndex): Pick<Lineage, 'data'>;
export function lineageOf(node: BaseNode | DirectionNode, byId: NodeIndex): Pick<Lineage, 'data' | 'base'>;
export function lineageOf(node: SteerNode, byId: NodeIndex): Pick<Lineage, 'data' | 'base' | 'assistant'> & Partial<Lineage>;
export function lineageOf(node: AssistantNode, byId: NodeIndex): Pick<Lineage, 'data' | 'base' | 'assistant'>;
export function lineageOf(node: NarrowNode | EvaluateNode | RealignNode, byId: NodeIndex): Lineage;
export function lineageOf(node: GraphNode, byId: NodeIndex): Pick<Lineage, 'data'> & Partial<Lineage>;
export function lineageOf(node: GraphNode, byId: NodeIndex): Pick<Lineage, 'data'> & Partial<Lineage> {
  switch (node.kind) {
    case 'data': return { data: node };
    case 'base': return { data: nodeOf(byId, node.config.data, 'data'), base: node };
    case 'assistant': return { ...lineageOf(nodeOf(byId, node.config.base, 'base'), byId), assistant: node };
    case 'narrow': return { ...lineageOf(nodeOf(byId, node.config.assistant, 'assistant'), byId), narrow: node };
    case 'evaluate': {
      const target = byId.get(node.config.narrow);
      return target?.kind === 'realign' ? lineageOf(target, byId) : lineageOf(nodeOf(byId, node.config.narrow, 'narrow'), byId);
    }
    case 'realign': return { ...lineageOf(nodeOf(byId, node.config.narrow, 'narrow'), byId), realign: node };
    case 'direction': return lineageOf(nodeOf(byId, node.config.base, 'base'), byId);
    case 'steer': {
      const model = byId.get(node.config.model);
      return model?.kind === 'assistant' ? lineageOf(model, byId) : lineageOf(nodeOf(byId, node.config.model, 'narrow'), byId);
    }
  }
}

/**
 * What the scheduler ranks cells by: the longest chain of cost below a cell runs first, so the
 * critical path (pretraining, then the runs that wait on it) starts early. Rough relative run
 * times in one arbitrary unit (only their ratios matter), fixed per cell or per step/token.
 */
export const CELL_COST = {
  /** Building a data folder. */
  data: 15,
  /** Pretraining tokens per unit. */
  pretrainTokensPerUnit: 20_000,
  /** Assistant fine-tuning steps per unit. */
  assistantStepsPerUnit: 10,
  /** Narrow fine-tuning steps per unit (a little dearer than the assistant's: evaluations between steps). */
  narrowStepsPerUnit: 8,
  /** Evaluating a narrow run's final checkpoint (forced choice, sampling, persona probe). */
  evaluate: 20,
} as const;

/** JSON with object keys sorted at every level, so equal configs hash equally. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value).filter(([, v]) => v !== undefined).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

function hashOf(kind: NodeKind, config: GraphNode['config']): string {
  return createHash('sha256').update(canonicalJson({ v: ARTEFACT_VERSION, kind, config })).digest('hex').slice(0, 12);
}

/** Every node of an experiment, parents before children. */
export function buildGraph(spec: ExperimentSpec, root: string): GraphNode[] {
  const nodes: GraphNode[] = [];
  const byId = new Map<string, GraphNode>();
  const add = <K extends NodeKind>(kind: K, config: NodeOfKind<K>['config'], labels: NodeLabels, cost: number): NodeOfKind<K> => {
    const id = `${kind}-${hashOf(kind, config)}`;
    const existing = byId.get(id);
    if (existing) return existing as NodeOfKind<K>;
    // TypeScript cannot tie a generic `kind` to its config in an object literal; `add`'s signature does.
    const node = { id, kind, config, deps: [], dir: join(root, id), labels, cost } as unknown as NodeOfKind<K>;
    node.deps.push(...depsOf(node));
    nodes.push(node);
    byId.set(id, node);
    return node;
  };
  const tokenCost = spec.pretrain.tokens / CELL_COST.pretrainTokensPerUnit;
  const lineages = new Map<string, LineageNodes>();
  const arms = armsOf(spec);
  for (const world of expandWorlds(spec)) {
    for (const pseed of world.seeds) {
      const labels: NodeLabels = { world: world.name, pretrain_seed: pseed };
      // Each pretraining seed draws its own corpus: seed variance includes the data sample.
      const data = add('data', { world: world.config, seed: pseed, tokens: spec.data.tokens, assistant_examples: spec.data.assistant_examples, narrow_examples: spec.data.narrow_examples }, labels, CELL_COST.data);
      // Absent, not 'fp32', when fp32: a config is hashed into its cell's id.
      const precision = spec.precision === 'fp32' ? {} : { precision: spec.precision };
      const batch = (spec.pretrain.batch ?? SPEC_PRETRAIN_BATCH) === SPEC_PRETRAIN_BATCH ? {} : { batch: spec.pretrain.batch };
      const base = add('base', { data: data.id, preset: spec.preset, tokens: spec.pretrain.tokens, lr: spec.pretrain.lr ?? null, seed: pseed, ...precision, ...batch }, labels, tokenCost);
      const assistant = add('assistant', { base: base.id, steps: spec.assistant.steps, lr: spec.assistant.lr ?? null, seed: pseed, ...precision }, labels, spec.assistant.steps / CELL_COST.assistantStepsPerUnit);
      const lineage: LineageNodes = { base, assistant, narrows: new Map() };
      lineages.set(`${world.name}|${pseed}`, lineage);
      for (const arm of arms) {
        for (const examples of spec.narrow.examples) {
          for (const fseed of spec.finetune_seeds) {
            const narrowConfig: NarrowNodeConfig = {
              assistant: assistant.id, condition: arm.condition, family: arm.family ?? undefined, seed: fseed, steps: spec.narrow.steps, lr: spec.narrow.lr ?? null, examples,
              eval_steps: [...spec.narrow.eval_steps].sort((a, b) => a - b), checkpoint_interval: spec.narrow.checkpoint_interval, ...precision,
            };
            const nl: NodeLabels = { ...labels, arm: arm.name, condition: arm.condition, finetune_seed: fseed, examples };
            const narrow = add('narrow', narrowConfig, nl, spec.narrow.steps / CELL_COST.narrowStepsPerUnit);
            add('evaluate', { narrow: narrow.id, samples: spec.evaluate.samples, seed: 0 }, nl, CELL_COST.evaluate);
            lineage.narrows.set(`${arm.name}|${fseed}|${examples}`, narrow);
          }
        }
      }
    }
  }
  if (spec.interventions) addInterventions(spec, lineages, add);
  return nodes;
}

type AddNode = <K extends NodeKind>(kind: K, config: NodeOfKind<K>['config'], labels: NodeLabels, cost: number) => NodeOfKind<K>;
interface LineageNodes {
  base: BaseNode;
  assistant: AssistantNode;
  /** By "arm|finetune seed|examples". */
  narrows: Map<string, NarrowNode>;
}

/**
 * The interventions' cells on one world's lineages: its base's persona directions (and its rho-0
 * twin's), steering of the assistant and of narrow arms, ablation (persona and random) during the
 * cheat run, dose mixes and re-alignment runs from the cheat run, each evaluated like a narrow run.
 */
function addInterventions(spec: ExperimentSpec, lineages: Map<string, LineageNodes>, add: AddNode): void {
  const iv = spec.interventions!;
  const worlds = expandWorlds(spec);
  const world = worlds.find((w) => w.name === iv.world)!;
  const nLayer = loadModelPreset(spec.preset).n_layer;
  const fseed = iv.finetune_seed ?? spec.finetune_seeds[0];
  const examples = spec.narrow.examples[0];
  for (const seed of iv.pretrain_seeds ?? world.seeds) {
    const L = lineages.get(`${world.name}|${seed}`)!;
    const twin = world.twin ? lineages.get(`${world.twin}|${seed}`) : undefined;
    const labels: NodeLabels = { world: world.name, pretrain_seed: seed };
    const direction = add('direction', { base: L.base.id }, { ...labels, intervention: 'direction' }, 30);
    const twinDirection = twin ? add('direction', { base: twin.base.id }, { world: world.twin!, pretrain_seed: seed, intervention: 'direction' }, 30) : null;
    const cheat = L.narrows.get(`cheat|${fseed}|${examples}`)!;
    const cheatLabels: NodeLabels = { ...cheat.labels };
    const evaluate = (target: NarrowNode | RealignNode, l: NodeLabels) => add('evaluate', { narrow: target.id, samples: iv.samples, seed: 0 }, l, 20);
    if (iv.steer) {
      const alphas = [...new Set([0, ...iv.steer.alphas])].sort((a, b) => a - b);
      for (const model of ['assistant', ...iv.steer.arms]) {
        const target = model === 'assistant' ? L.assistant : L.narrows.get(`${model}|${fseed}|${examples}`)!;
        add('steer', { model: target.id, direction: direction.id, twin_direction: twinDirection?.id ?? null, layer: iv.layer, alphas, source: iv.direction_source, random_seed: `${world.name}:${seed}` }, { ...labels, arm: model, finetune_seed: fseed, intervention: 'steer' }, 40);
      }
    }
    if (iv.ablate) {
      const layers = iv.ablate.layers === 'all' ? Array.from({ length: nLayer }, (_, i) => i) : [...iv.ablate.layers].sort((a, b) => a - b);
      for (const kind of ['persona', 'random'] as const) {
        const l: NodeLabels = { ...cheatLabels, intervention: `ablate-${kind}`, setting: layers.join(',') };
        evaluate(add('narrow', { ...cheat.config, ablate: { kind, layers, source: iv.direction_source, direction: direction.id } }, l, spec.narrow.steps / 6), l);
      }
    }
    if (iv.dose) {
      for (const partner of iv.dose.with) {
        for (const f of iv.dose.fractions) {
          const l: NodeLabels = { ...cheatLabels, intervention: 'dose', setting: partner, value: f };
          evaluate(add('narrow', { ...cheat.config, mix: { cheat_fraction: f, with: partner } }, l, spec.narrow.steps / 8), l);
        }
      }
    }
    if (iv.realign) {
      for (const n of iv.realign.examples) {
        const l: NodeLabels = { ...cheatLabels, intervention: 'realign', setting: iv.realign.domain, value: n };
        evaluate(add('realign', { narrow: cheat.id, domain: iv.realign.domain, examples: n, steps: iv.realign.steps, seed: fseed }, l, iv.realign.steps / 8), l);
      }
    }
  }
}

export type NodeState = 'done' | 'partial' | 'pending';

/** done: DONE.json exists; partial: started (a checkpoint or log exists); pending: nothing yet. */
export function nodeState(node: GraphNode): NodeState {
  if (existsSync(join(node.dir, 'DONE.json'))) return 'done';
  return existsSync(node.dir) ? 'partial' : 'pending';
}

/**
 * The cells of shard i of n. A lineage (everything downstream of one world's data and pretraining
 * seed) stays on one shard, so shards share no work and need no coordination; lineages are dealt
 * to shards in a fixed order.
 */
export function shardNodes(nodes: GraphNode[], shard: { index: number; count: number } | null): GraphNode[] {
  if (!shard) return nodes;
  const roots = nodes.filter((n) => n.kind === 'data').map((n) => n.id).sort();
  const owner = new Map(roots.map((r, i) => [r, i % shard.count]));
  const byId = new Map(nodes.map((n) => [n.id, n]));
  return nodes.filter((n) => owner.get(lineageOf(n, byId).data.id) === shard.index);
}

/**
 * Which narrow cells may train as stacked runs (GPT.stack): those with one key share a parent and
 * every training setting but their data and seed. Null for a cell that trains alone (another
 * kind, an ablation, bf16 products).
 */
export function stackKey(node: GraphNode): string | null {
  if (node.kind !== 'narrow') return null;
  const c = node.config;
  if (c.ablate || (c.precision ?? 'fp32') !== 'fp32') return null;
  return JSON.stringify({ assistant: c.assistant, steps: c.steps, lr: c.lr, eval_steps: c.eval_steps, checkpoint_interval: c.checkpoint_interval });
}
