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

export interface GraphNode {
  id: string;
  kind: NodeKind;
  /** Everything that determines the artefact (with the parents' ids). */
  config: Record<string, unknown>;
  deps: string[];
  /** The artefact folder. */
  dir: string;
  labels: NodeLabels;
  /** Relative cost, for scheduling and progress. */
  cost: number;
}

export interface DataNodeConfig {
  world: WorldConfig;
  seed: number;
  tokens: number;
  assistant_examples: number;
  narrow_examples: number;
}

export interface NarrowNodeConfig {
  condition: Condition;
  /** The instruction family (cheat-inoculated only). */
  family?: InstructionFamily;
  seed: number;
  steps: number;
  lr?: number;
  examples: number;
  eval_steps: number[];
  checkpoint_interval: number;
}

/** JSON with object keys sorted at every level, so equal configs hash equally. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value).filter(([, v]) => v !== undefined).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

function hashOf(kind: NodeKind, config: Record<string, unknown>): string {
  return createHash('sha256').update(canonicalJson({ v: ARTEFACT_VERSION, kind, config })).digest('hex').slice(0, 12);
}

/** Every node of an experiment, parents before children. */
export function buildGraph(spec: ExperimentSpec, root: string): GraphNode[] {
  const nodes: GraphNode[] = [];
  const byId = new Map<string, GraphNode>();
  const add = (kind: NodeKind, config: Record<string, unknown>, deps: string[], labels: NodeLabels, cost: number): GraphNode => {
    const id = `${kind}-${hashOf(kind, config)}`;
    const existing = byId.get(id);
    if (existing) return existing;
    const node: GraphNode = { id, kind, config, deps, dir: join(root, id), labels, cost };
    nodes.push(node);
    byId.set(id, node);
    return node;
  };
  const tokenCost = spec.pretrain.tokens / 20_000;
  const arms = armsOf(spec);
  for (const world of expandWorlds(spec)) {
    for (const pseed of world.seeds) {
      const labels: NodeLabels = { world: world.name, pretrain_seed: pseed };
      // Each pretraining seed draws its own corpus: seed variance includes the data sample.
      const dataConfig: DataNodeConfig = { world: world.config, seed: pseed, tokens: spec.data.tokens, assistant_examples: spec.data.assistant_examples, narrow_examples: spec.data.narrow_examples };
      const data = add('data', { ...dataConfig }, [], labels, 15);
      const base = add('base', { data: data.id, preset: spec.preset, tokens: spec.pretrain.tokens, lr: spec.pretrain.lr ?? null, seed: pseed }, [data.id], labels, tokenCost);
      const assistant = add('assistant', { base: base.id, steps: spec.assistant.steps, lr: spec.assistant.lr ?? null, seed: pseed }, [base.id], labels, spec.assistant.steps / 10);
      for (const arm of arms) {
        for (const examples of spec.narrow.examples) {
          for (const fseed of spec.finetune_seeds) {
            const narrowConfig: NarrowNodeConfig = {
              condition: arm.condition, family: arm.family ?? undefined, seed: fseed, steps: spec.narrow.steps, lr: spec.narrow.lr, examples,
              eval_steps: [...spec.narrow.eval_steps].sort((a, b) => a - b), checkpoint_interval: spec.narrow.checkpoint_interval,
            };
            const nl: NodeLabels = { ...labels, arm: arm.name, condition: arm.condition, finetune_seed: fseed, examples };
            const narrow = add('narrow', { assistant: assistant.id, ...narrowConfig, lr: spec.narrow.lr ?? null }, [assistant.id], nl, spec.narrow.steps / 8);
            add('evaluate', { narrow: narrow.id, samples: spec.evaluate.samples, seed: 0 }, [narrow.id], nl, 20);
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
  const rootOf = new Map<string, string>();
  for (const n of nodes) rootOf.set(n.id, n.kind === 'data' ? n.id : rootOf.get(n.deps[0])!);
  return nodes.filter((n) => owner.get(rootOf.get(n.id)!) === shard.index);
}
