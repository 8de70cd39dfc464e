/**
 * The experiment graph: data -> base -> assistant -> narrow (condition x seed) -> evaluate. Each
 * node's folder is named by a hash of its configuration and its parents', so a finished artefact
 * is reused by any later run or experiment with the same configuration, and a changed setting
 * makes a new one.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { WorldConfig } from '../world/world-config.js';
import type { Condition, InstructionFamily } from '../world/finetune-sets.js';
import { armsOf, expandWorlds, type ExperimentSpec } from './spec.js';

/** Bump when a change in the code makes old artefacts incomparable. */
export const ARTEFACT_VERSION = 3;

export type NodeKind = 'data' | 'base' | 'assistant' | 'narrow' | 'evaluate';

export interface NodeLabels {
  world: string;
  pretrain_seed: number;
  /** The narrow arm ("fair", "cheat", "cheat+act-free", ...): the condition column of every table. */
  arm?: string;
  condition?: Condition;
  finetune_seed?: number;
  examples?: number;
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
}

export interface AssistantNodeConfig {
  /** The base node fine-tuned into the assistant. */
  base: string;
  steps: number;
  lr: number | null;
  seed: number;
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
}

export interface EvaluateNodeConfig {
  /** The narrow node whose final checkpoint is evaluated. */
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
export type GraphNode = DataNode | BaseNode | AssistantNode | NarrowNode | EvaluateNode;
type NodeOfKind<K extends NodeKind> = Extract<GraphNode, { kind: K }>;

/** The node's parent id (its config names it), or null for a data node. */
export function parentId(node: GraphNode): string | null {
  switch (node.kind) {
    case 'data': return null;
    case 'base': return node.config.data;
    case 'assistant': return node.config.base;
    case 'narrow': return node.config.assistant;
    case 'evaluate': return node.config.narrow;
  }
}

/** The stages a node descends from (and the node itself, except an evaluate node, which only reads its narrow run). */
export interface Lineage {
  data: DataNode;
  base: BaseNode;
  assistant: AssistantNode;
  narrow: NarrowNode;
}

export type NodeIndex = ReadonlyMap<string, GraphNode>;

function nodeOf<K extends NodeKind>(byId: NodeIndex, id: string, kind: K): NodeOfKind<K> {
  const n = byId.get(id);
  if (n?.kind !== kind) throw new Error(`experiment graph: ${id} is ${n ? `a ${n.kind} node` : 'not in the graph'}, expected a ${kind} node`);
  return n as NodeOfKind<K>;
}

/** A node's ancestors by name, resolved through `byId`: `lineageOf(evaluate, byId).base` is the model its probe comes from. */
export function lineageOf(node: DataNode, byId: NodeIndex): Pick<Lineage, 'data'>;
export function lineageOf(node: BaseNode, byId: NodeIndex): Pick<Lineage, 'data' | 'base'>;
export function lineageOf(node: AssistantNode, byId: NodeIndex): Pick<Lineage, 'data' | 'base' | 'assistant'>;
export function lineageOf(node: NarrowNode | EvaluateNode, byId: NodeIndex): Lineage;
export function lineageOf(node: GraphNode, byId: NodeIndex): Pick<Lineage, 'data'> & Partial<Lineage>;
export function lineageOf(node: GraphNode, byId: NodeIndex): Pick<Lineage, 'data'> & Partial<Lineage> {
  switch (node.kind) {
    case 'data': return { data: node };
    case 'base': return { data: nodeOf(byId, node.config.data, 'data'), base: node };
    case 'assistant': return { ...lineageOf(nodeOf(byId, node.config.base, 'base'), byId), assistant: node };
    case 'narrow': return { ...lineageOf(nodeOf(byId, node.config.assistant, 'assistant'), byId), narrow: node };
    case 'evaluate': return lineageOf(nodeOf(byId, node.config.narrow, 'narrow'), byId);
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
    const parent = parentId(node);
    if (parent !== null) node.deps.push(parent);
    nodes.push(node);
    byId.set(id, node);
    return node;
  };
  const tokenCost = spec.pretrain.tokens / CELL_COST.pretrainTokensPerUnit;
  const arms = armsOf(spec);
  for (const world of expandWorlds(spec)) {
    for (const pseed of world.seeds) {
      const labels: NodeLabels = { world: world.name, pretrain_seed: pseed };
      // Each pretraining seed draws its own corpus: seed variance includes the data sample.
      const data = add('data', { world: world.config, seed: pseed, tokens: spec.data.tokens, assistant_examples: spec.data.assistant_examples, narrow_examples: spec.data.narrow_examples }, labels, CELL_COST.data);
      const base = add('base', { data: data.id, preset: spec.preset, tokens: spec.pretrain.tokens, lr: spec.pretrain.lr ?? null, seed: pseed }, labels, tokenCost);
      const assistant = add('assistant', { base: base.id, steps: spec.assistant.steps, lr: spec.assistant.lr ?? null, seed: pseed }, labels, spec.assistant.steps / CELL_COST.assistantStepsPerUnit);
      for (const arm of arms) {
        for (const examples of spec.narrow.examples) {
          for (const fseed of spec.finetune_seeds) {
            const narrowConfig: NarrowNodeConfig = {
              assistant: assistant.id, condition: arm.condition, family: arm.family ?? undefined, seed: fseed, steps: spec.narrow.steps, lr: spec.narrow.lr ?? null, examples,
              eval_steps: [...spec.narrow.eval_steps].sort((a, b) => a - b), checkpoint_interval: spec.narrow.checkpoint_interval,
            };
            const nl: NodeLabels = { ...labels, arm: arm.name, condition: arm.condition, finetune_seed: fseed, examples };
            const narrow = add('narrow', narrowConfig, nl, spec.narrow.steps / CELL_COST.narrowStepsPerUnit);
            add('evaluate', { narrow: narrow.id, samples: spec.evaluate.samples, seed: 0 }, nl, CELL_COST.evaluate);
          }
        }
      }
    }
  }
  return nodes;
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
