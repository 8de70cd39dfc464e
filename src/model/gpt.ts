/**
 * A GPT-2 style decoder in the shape of nanoGPT's model.py: token and position embeddings,
 * pre-LayerNorm blocks of causal self-attention and a GELU MLP, a final LayerNorm, and an output
 * head tied to the token embedding. Parameters keep GPT-2's names. Activations can be read and
 * changed at TransformerLens hook points (hook_embed, blocks.{L}.hook_resid_post, ...).
 */
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../util/rng.js';
import type { ModelConfig } from './model-config.js';
import { tidyValues } from './read.js';
import { runSlice, stackRuns } from './run-axis.js';
import { block, BLOCK_HOOK_POINTS, type BlockContext, type BlockHookPoint, type BlockWeights, causalAttention } from './block.js';
import { crossEntropy, dropout, embed, gatherRows, layerNorm, linear } from './ops.js';

export type ParamMap = Map<string, tf.Variable>;

/**
 * Which hook points to read and how to change them. Every hook point of hookNames() honours both:
 * an edit's replacement (of the same shape; another shape is refused with an error) is what the
 * rest of the forward pass computes from, keys, values and the attention pattern included.
 */
export interface Hooks {
  capture?: (name: string) => boolean;
  /** Return a replacement for the activation (same shape), or undefined to leave it. */
  edit?: (name: string, value: tf.Tensor) => tf.Tensor | undefined;
  /**
   * The hook points `edit` may change (default: all). Naming them keeps every other point on the
   * plain (fused) path, so an edit that adds zero leaves the forward pass bit for bit unchanged.
   */
  edits?: (name: string) => boolean;
}

export interface ForwardOptions {
  hooks?: Hooks;
  /** Seed for this call's dropout masks; dropout is off when undefined. */
  dropoutSeed?: number;
}

export interface ForwardResult {
  /** [B, T, V] */
  logits: tf.Tensor3D;
  /** Captured activations by hook name (the caller owns and disposes them). */
  cache: Map<string, tf.Tensor>;
}

/** Every hook point of a model, in the order they occur. */
export function hookNames(cfg: ModelConfig): string[] {
  const names = ['hook_embed', 'hook_pos_embed'];
  for (let l = 0; l < cfg.n_layer; l++) names.push(...BLOCK_HOOK_POINTS.map((p) => `blocks.${l}.${p}`));
  names.push('ln_final.hook_normalized');
  return names;
}

/** Parameter names and shapes in a fixed order (the order of checkpoints and optimizer state). */
export function parameterShapes(cfg: ModelConfig): Array<[string, number[]]> {
  const C = cfg.n_embd;
  const out: Array<[string, number[]]> = [
    ['wte', [cfg.vocab_size, C]],
    ['wpe', [cfg.block_size, C]],
  ];
  for (let l = 0; l < cfg.n_layer; l++) {
    const p = `h.${l}`;
    out.push(
      [`${p}.ln_1.weight`, [C]], [`${p}.ln_1.bias`, [C]],
      [`${p}.attn.c_attn.weight`, [C, 3 * C]], [`${p}.attn.c_attn.bias`, [3 * C]],
      [`${p}.attn.c_proj.weight`, [C, C]], [`${p}.attn.c_proj.bias`, [C]],
      [`${p}.ln_2.weight`, [C]], [`${p}.ln_2.bias`, [C]],
      [`${p}.mlp.c_fc.weight`, [C, 4 * C]], [`${p}.mlp.c_fc.bias`, [4 * C]],
      [`${p}.mlp.c_proj.weight`, [4 * C, C]], [`${p}.mlp.c_proj.bias`, [C]],
    );
  }
  out.push(['ln_f.weight', [C]], ['ln_f.bias', [C]]);
  return out;
}

/**
 * GPT-2 initialisation, drawn by the project's own seeded generator so every backend starts from
 * identical weights: N(0, 0.02) for matrices and embeddings, residual projections scaled by
 * 1/sqrt(2 * n_layer), zero biases, unit LayerNorm gains.
 */
export function initialWeights(cfg: ModelConfig, seed: number): Map<string, Float32Array> {
  const rng = new Rng(`init:${seed}`);
  const weights = new Map<string, Float32Array>();
  for (const [name, shape] of parameterShapes(cfg)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const w = new Float32Array(n);
    if (name.endsWith('.bias')) {
      // zeros
    } else if (name.includes('ln_')) {
      w.fill(1);
    } else {
      const std = name.endsWith('c_proj.weight') ? 0.02 / Math.sqrt(2 * cfg.n_layer) : 0.02;
      for (let i = 0; i < n; i++) w[i] = std * rng.normal();
    }
    weights.set(name, w);
  }
  return weights;
}

let instances = 0;

/** Low-rank adapters: W + (alpha / rank) * A @ B on the target matrices, only A and B trained. */
export interface LoraConfig {
  rank: number;
  alpha: number;
  /** Parameter names of the adapted matrices, e.g. h.0.mlp.c_proj.weight. */
  targets: string[];
}

/** Matrices LoRA can adapt, by their name inside a block. */
export const LORA_TARGETS = ['attn.c_attn', 'attn.c_proj', 'mlp.c_fc', 'mlp.c_proj'] as const;

export class GPT {
  readonly params: ParamMap = new Map();
  /** Adapter variables (name.lora_A [K, r], name.lora_B [r, N]); empty without LoRA. */
  readonly adapters: ParamMap = new Map();
  lora: LoraConfig | null = null;
  /** Variable names are unique per instance (tfjs keeps one global registry). */
  private readonly prefix = `gpt${instances++}/`;

  constructor(
    readonly config: ModelConfig,
    weights: Map<string, Float32Array>,
    /**
     * Stacked runs: R models of this config trained side by side (GPT.stack), every parameter
     * with a leading run axis [R, ...shape] and ids [R, B, T]; null for one model.
     */
    readonly runs: number | null = null,
  ) {
    for (const [name, single] of parameterShapes(config)) {
      const shape = runs === null ? single : [runs, ...single];
      const w = weights.get(name);
      if (!w) throw new Error(`missing weight ${name}`);
      if (w.length !== shape.reduce((a, b) => a * b, 1)) throw new Error(`weight ${name} has ${w.length} values, expected shape [${shape}]`);
      // A copy: on cpu and native a variable shares its initial array, and AdamW updates in place.
      this.params.set(name, tf.tidy(() => tf.variable(tf.tensor(w.slice(), shape, 'float32'), true, this.prefix + name)));
    }
  }

  static init(config: ModelConfig, seed: number): GPT {
    return new GPT(config, initialWeights(config, seed));
  }

  /** R models of one config as one stacked model: run r's weights are `runs[r]`. */
  static stack(config: ModelConfig, runs: Array<Map<string, Float32Array>>): GPT {
    const weights = new Map<string, Float32Array>();
    for (const [name] of parameterShapes(config)) {
      weights.set(name, stackRuns(runs.map((w, r) => w.get(name) ?? missing(`run ${r}: weight ${name}`)), `weight ${name}`));
    }
    // The constructor checks each stacked weight against [R, ...shape].
    return new GPT(config, weights, runs.length);
  }

  /** Copies of run r's weights of a stacked model (what a single model of that run would hold). */
  runWeights(r: number): Map<string, Float32Array> {
    if (this.runs === null || r < 0 || r >= this.runs) throw new Error(`no run ${r} in this model (${this.runs ?? 'not stacked'})`);
    const out = new Map<string, Float32Array>();
    for (const [name, v] of this.params) out.set(name, runSlice(v.dataSync() as Float32Array, this.runs, r));
    return out;
  }

  /** The parameter name of a tfjs variable name from this model (as tf.variableGrads reports it). */
  paramName(variableName: string): string {
    return variableName.startsWith(this.prefix) ? variableName.slice(this.prefix.length) : variableName;
  }

  p(name: string): tf.Variable {
    const v = this.params.get(name);
    if (!v) throw new Error(`no parameter ${name}`);
    return v;
  }

  /** A weight as the forward pass uses it: the parameter, plus its adapter's low-rank update. */
  weight(name: string): tf.Tensor {
    const a = this.adapters.get(`${name}.lora_A`);
    if (!a || !this.lora) return this.p(name);
    const b = this.adapters.get(`${name}.lora_B`)!;
    return tf.add(this.p(name), tf.mul(tf.matMul(a, b), this.lora.alpha / this.lora.rank));
  }

  /**
   * Attach LoRA adapters: A ~ N(0, 1/K) and B = 0, so training starts from the unchanged model.
   * `weights` restores saved adapters instead.
   */
  addAdapters(config: LoraConfig, seed: number, weights?: Map<string, Float32Array>): void {
    if (this.lora) throw new Error('this model already has adapters');
    const rng = new Rng(`lora:${seed}`);
    for (const target of config.targets) {
      const [K, N] = this.p(target).shape;
      if (!Number.isInteger(config.rank) || config.rank < 1 || config.rank > Math.min(K, N)) {
        throw new Error(`--lora-rank ${config.rank} is out of range for ${target} [${K}, ${N}]: use an integer from 1 to ${Math.min(K, N)}`);
      }
      const shapes: Array<[string, number[]]> = [[`${target}.lora_A`, [K, config.rank]], [`${target}.lora_B`, [config.rank, N]]];
      for (const [name, shape] of shapes) {
        const n = shape[0] * shape[1];
        let init = weights?.get(name);
        if (weights && !init) throw new Error(`saved adapters lack ${name}`);
        if (!init) {
          init = new Float32Array(n);
          if (name.endsWith('lora_A')) for (let i = 0; i < n; i++) init[i] = rng.normal() / Math.sqrt(K);
        }
        this.adapters.set(name, tf.tidy(() => tf.variable(tf.tensor(init.slice(), shape, 'float32'), true, this.prefix + name)));
      }
    }
    this.lora = config;
  }

  /** Weights with every adapter merged in (what evaluation loads). */
  mergedWeights(): Map<string, Float32Array> {
    const out = this.weights();
    if (!this.lora) return out;
    for (const target of this.lora.targets) out.set(target, tidyValues(() => this.weight(target)));
    return out;
  }

  /** Copies of the adapters' current weights. */
  adapterWeights(): Map<string, Float32Array> {
    return new Map([...this.adapters].map(([n, v]) => [n, (v.dataSync() as Float32Array).slice()]));
  }

  /** Logits for ids [B, T] (int32, T <= block_size); stacked runs: ids [R, B, T], logits [R, B, T, V]. Call inside tf.tidy. */
  forward(ids: tf.Tensor2D | tf.Tensor3D, opts: ForwardOptions = {}): ForwardResult {
    const { hidden, cache } = this.hidden(ids, opts);
    return { logits: this.unembed(hidden) as tf.Tensor3D, cache };
  }

  /**
   * Logits only at the given flat positions (b * T + t) of ids [B, T]: [N, V]. Scoring and
   * sampling need a few positions per sequence, and the head is the widest product.
   */
  logitsAt(ids: tf.Tensor2D, positions: Int32Array, opts: ForwardOptions = {}): tf.Tensor2D {
    return this.headAt(this.hidden(ids, opts).hidden, positions);
  }

  /** logitsAt() in its own tidy scope, with the captured activations (as inspect() gives them). */
  inspectAt(ids: tf.Tensor2D, positions: Int32Array, hooks: Hooks): { logits: tf.Tensor2D; cache: Map<string, tf.Tensor> } {
    return this.captured(ids, hooks, (hidden) => this.headAt(hidden, positions));
  }

  /**
   * The residual stream after each of `layers` (blocks.L.hook_resid_post) at flat positions
   * (b * T + t) of ids [B, T]: one [N, C] per layer, as inspect() would capture them. Blocks after
   * the last layer asked for and the head do not run: a probe reads the middle of the model, and
   * the head is the widest product. Call inside tf.tidy.
   */
  residualsAt(ids: tf.Tensor2D, positions: Int32Array, layers: number[]): tf.Tensor2D[] {
    if (this.runs !== null) throw new Error('residualsAt reads one model, not stacked runs');
    for (const l of layers) if (!Number.isInteger(l) || l < 0 || l >= this.config.n_layer) throw new Error(`layer ${l} does not exist; the model has layers 0 to ${this.config.n_layer - 1}`);
    const [, T] = ids.shape;
    if (T > this.config.block_size) throw new Error(`sequence of ${T} tokens exceeds the context of ${this.config.block_size}`);
    const at = tf.tensor1d(positions, 'int32');
    const attend = causalAttention(this.config.n_head);
    const out = new Map<number, tf.Tensor2D>();
    let x = embed(ids, this.p('wte'), this.p('wpe'));
    for (let l = 0; l <= Math.max(...layers); l++) {
      x = block(x, this.blockWeights(l), attend);
      if (layers.includes(l)) out.set(l, tf.gather(x.reshape([-1, this.config.n_embd]), at) as tf.Tensor2D);
    }
    return layers.map((l) => out.get(l)!);
  }

  /** The head's logits [N, V] at flat positions of the final LayerNorm's output [B, T, C]. */
  private headAt(hidden: tf.Tensor, positions: Int32Array): tf.Tensor2D {
    return this.unembed(tf.gather(hidden.reshape([-1, this.config.n_embd]), tf.tensor1d(positions, 'int32'))) as tf.Tensor2D;
  }

  /**
   * Stacked runs reading one batch: every run's logits at the same flat positions of ids [B, T],
   * [R, N, V], from one forward pass of all the runs.
   */
  runLogitsAt(ids: tf.Tensor2D, positions: Int32Array): tf.Tensor3D {
    const R = this.runs;
    if (R === null) throw new Error('runLogitsAt needs stacked runs (GPT.stack)');
    const [B, T] = ids.shape;
    const { hidden } = this.hidden(tf.tile(ids.reshape([1, B, T]), [R, 1, 1]) as tf.Tensor3D, {});
    const picked = tf.gather(hidden.reshape([R, B * T, this.config.n_embd]), tf.tensor1d(positions, 'int32'), 1);
    return this.unembed(picked) as tf.Tensor3D;
  }

  /** Block L's weights by their names inside the block (with LoRA updates merged in). */
  blockWeights(l: number): BlockWeights {
    return (name) => this.weight(`h.${l}.${name}`);
  }

  /** The final LayerNorm (ln_f). */
  finalNorm(x: tf.Tensor): tf.Tensor {
    return layerNorm(x, this.p('ln_f.weight'), this.p('ln_f.bias'));
  }

  /** The output head, tied to the token embedding: logits = x @ wte^T. */
  unembed(x: tf.Tensor): tf.Tensor {
    return linear(x, this.p('wte'), undefined, true);
  }

  /** The final LayerNorm's output [B, T, C] (ln_final.hook_normalized). Call inside tf.tidy. */
  private hidden(ids: tf.Tensor2D | tf.Tensor3D, opts: ForwardOptions): { hidden: tf.Tensor; cache: Map<string, tf.Tensor> } {
    const cfg = this.config;
    const [B, T] = ids.shape.slice(-2);
    if (ids.rank !== (this.runs === null ? 2 : 3)) throw new Error(`ids must be ${this.runs === null ? '[B, T]' : '[runs, B, T]'}, got [${ids.shape}]`);
    if (this.runs !== null && opts.hooks) throw new Error('hooks read and change one model; stacked runs take none');
    if (T > cfg.block_size) throw new Error(`sequence of ${T} tokens exceeds the context of ${cfg.block_size}`);
    const cache = new Map<string, tf.Tensor>();
    const hooks = opts.hooks;
    let dropSeed = opts.dropoutSeed;
    const drop = (x: tf.Tensor) => dropout(x, cfg.dropout, dropSeed === undefined ? undefined : dropSeed++);
    const hook = (name: string, x: tf.Tensor): tf.Tensor => {
      const edited = hooks?.edit && (hooks.edits?.(name) ?? true) ? hooks.edit(name, x) : undefined;
      if (edited && !tf.util.arraysEqual(edited.shape, x.shape)) {
        throw new Error(`hook ${name}: an edit must keep the activation's shape [${x.shape}], got [${edited.shape}]`);
      }
      const value = edited ?? x;
      if (hooks?.capture?.(name)) cache.set(name, tf.keep(value.clone()));
      return value;
    };
    const wants = (name: string) => Boolean(hooks && ((hooks.edit && (hooks.edits?.(name) ?? true)) || hooks.capture?.(name)));
    let x: tf.Tensor;
    if (wants('hook_embed') || wants('hook_pos_embed')) {
      const tok = hook('hook_embed', gatherRows(this.p('wte'), ids).reshape([B, T, cfg.n_embd]));
      const pos = hook('hook_pos_embed', this.p('wpe').slice([0, 0], [T, -1]));
      x = tf.add(tok, pos.expandDims(0));
    } else {
      x = embed(ids, this.p('wte'), this.p('wpe'));
    }
    x = drop(x);
    const attend = causalAttention(cfg.n_head);
    for (let l = 0; l < cfg.n_layer; l++) {
      const ctx: BlockContext = hooks
        ? { hook: (p: BlockHookPoint, v) => hook(`blocks.${l}.${p}`, v), wants: (p: BlockHookPoint) => wants(`blocks.${l}.${p}`), drop }
        : { hook: (_p, v) => v, wants: () => false, drop };
      x = block(x, this.blockWeights(l), attend, ctx);
    }
    return { hidden: hook('ln_final.hook_normalized', this.finalNorm(x)), cache };
  }

  /** forward() in its own tidy scope: the caller owns the returned logits and captured activations. */
  inspect(ids: tf.Tensor2D, hooks: Hooks): ForwardResult {
    return this.captured(ids, hooks, (hidden) => this.unembed(hidden) as tf.Tensor3D);
  }

  /** The head `head` applied to the forward pass in its own tidy scope; the captured activations are kept for the caller. */
  private captured<L extends tf.Tensor>(ids: tf.Tensor2D, hooks: Hooks, head: (hidden: tf.Tensor) => L): { logits: L; cache: Map<string, tf.Tensor> } {
    let cache = new Map<string, tf.Tensor>();
    const logits = tf.tidy(() => {
      const r = this.hidden(ids, { hooks });
      cache = r.cache;
      return head(r.hidden);
    });
    return { logits, cache };
  }

  /** Mean next-token loss over positions with weight > 0. targets int32 [B, T], weights float32 [B, T]. */
  loss(ids: tf.Tensor2D, targets: tf.Tensor2D, weights: tf.Tensor2D, opts: ForwardOptions = {}): tf.Scalar {
    const { logits } = this.forward(ids, opts);
    const V = this.config.vocab_size;
    return crossEntropy(logits.reshape([-1, V]), targets.reshape([-1]), weights.reshape([-1])) as tf.Scalar;
  }

  /**
   * Stacked runs: the sum of each run's mean next-token loss over its own positions with weight > 0
   * (ids, targets, weights [R, B, T]), to differentiate: no parameter is shared, so run r's
   * gradient is that of its own loss. One cross-entropy over every run's positions, each weight
   * divided by its run's total (a slice per run would cost a pad of the logits in the backward
   * pass); `losses` receives each run's own mean loss [R] (kept; the caller disposes it).
   */
  runLosses(ids: tf.Tensor3D, targets: tf.Tensor3D, weights: tf.Tensor3D, losses?: (perRun: tf.Tensor1D) => void): tf.Scalar {
    const R = this.runs;
    if (R === null) throw new Error('runLosses needs stacked runs (GPT.stack)');
    const { logits } = this.forward(ids);
    const V = this.config.vocab_size;
    const flat = logits.reshape([-1, V]);
    const t = targets.reshape([-1]);
    const perRunWeight = tf.sum(weights.reshape([R, -1]), 1);
    // Runs without a trained position in this batch add nothing (their weights stay 0).
    const trained = tf.cast(tf.greater(perRunWeight, 0), 'float32');
    const w = tf.mul(weights.reshape([R, -1]), tf.div(trained, tf.maximum(perRunWeight, 1e-8)).reshape([R, 1])).reshape([-1]);
    const counted = tf.sum(trained);
    if (losses) {
      // Each run's value, read from its rows (contiguous slices, no gradient recorded through them).
      const rows = flat.shape[0] / R;
      losses(tf.keep(tf.stack(Array.from({ length: R }, (_, r) => crossEntropy(tf.slice(flat, [r * rows, 0], [rows, V]), tf.slice(t, [r * rows], [rows]), tf.slice(w, [r * rows], [rows])))) as tf.Tensor1D));
    }
    return tf.mul(crossEntropy(flat, t, w), counted) as tf.Scalar;
  }

  /**
   * Copies of the current weights (dataSync alone would return the live storage on cpu and
   * native, which the fused AdamW updates in place).
   */
  weights(): Map<string, Float32Array> {
    const out = new Map<string, Float32Array>();
    for (const [name, v] of this.params) out.set(name, (v.dataSync() as Float32Array).slice());
    return out;
  }

  dispose(): void {
    for (const v of [...this.params.values(), ...this.adapters.values()]) v.dispose();
    this.params.clear();
    this.adapters.clear();
  }
}

function missing(what: string): never {
  throw new Error(`${what} is missing`);
}
