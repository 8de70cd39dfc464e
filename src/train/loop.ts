/**
 * The training loop, in the manner of nanoGPT's train.py: warmup then cosine learning rate,
 * gradient accumulation, global-norm clipping, periodic evaluation and checkpoints, a progress
 * bar with loss, tokens/s and ETA, a NaN guard that stops without touching the last good
 * checkpoint, and exact resume (the batch source and the step are the whole loop state; dropout
 * masks are seeded by step).
 */
import * as tf from '@tensorflow/tfjs';
import { withPrecision, type Precision } from '../backend/product-precision.js';
import type { BatchSource } from '../data/batches.js';
import type { GPT, Hooks } from '../model/gpt.js';
import { microDropoutSeed, stepDropoutSeed } from './dropout-seeds.js';
import { AdamW, learningRate, NonFiniteError } from './optimizer.js';
import type { MetricRow } from './metrics.js';

export interface LoopOptions {
  steps: number;
  gradAccum: number;
  lr: number;
  minLr: number;
  warmup: number;
  /** Evaluate every this many steps (and at the end); 0 = only at the end. */
  evalInterval: number;
  /** Checkpoint every this many steps (and at the end). */
  checkpointInterval: number;
  logInterval: number;
  seed: number;
  /** How the training step's products run (evaluation always runs in fp32) [fp32]. */
  precision?: Precision;
  /** Edits applied to every training forward pass (and so to its backward pass), e.g. an ablation. */
  hooks?: Hooks;
}

export interface LoopState {
  step: number;
  tokens: number;
  elapsed: number;
  source: unknown;
}

export interface LoopCallbacks {
  /** Extra measurements at evaluation steps (validation loss, samples, inference gap...). */
  evaluate?: (step: number) => Promise<MetricRow> | MetricRow;
  /** Persist a checkpoint of the current state; `metrics` is the whole log so far. */
  save: (state: LoopState, metrics: MetricRow[]) => void;
  progress?: (step: number, total: number, fields: Record<string, string | number>) => void;
  log?: (line: string) => void;
  /** Polled between steps, after yielding to the event loop: true to save and stop (Ctrl-C). */
  shouldStop?: () => boolean;
}

export class TrainingDiverged extends Error {
  override name = 'TrainingDiverged';
}

export interface LoopResult {
  state: LoopState;
  metrics: MetricRow[];
  stopped: boolean;
}

/** One optimizer step over `gradAccum` micro-batches; returns the mean loss and the gradient norm. */
export function trainStep(model: GPT, optimizer: AdamW, source: BatchSource, gradAccum: number, lr: number, dropoutSeed: number, hooks?: Hooks): { loss: number; gradNorm: number; tokens: number } {
  const vars = [...optimizer.params.values()];
  let total: Map<string, tf.Tensor> | null = null;
  let lossSum = 0;
  let tokens = 0;
  for (let micro = 0; micro < gradAccum; micro++) {
    const b = source.next();
    tokens += b.tokens;
    const { value, grads } = tf.tidy(() => {
      const ids = tf.tensor2d(b.ids, [b.batch, b.T], 'int32');
      const targets = tf.tensor2d(b.targets, [b.batch, b.T], 'int32');
      const weights = tf.tensor2d(b.weights, [b.batch, b.T], 'float32');
      const seed = model.config.dropout > 0 ? microDropoutSeed(dropoutSeed, micro) : undefined;
      return tf.variableGrads(() => tf.div(model.loss(ids, targets, weights, { dropoutSeed: seed, hooks }), gradAccum) as tf.Scalar, vars);
    });
    lossSum += value.dataSync()[0];
    value.dispose();
    const named = new Map(Object.entries(grads).map(([k, g]) => [model.paramName(k), g]));
    if (total === null) {
      total = named;
    } else {
      for (const [k, g] of named) {
        const sum = tf.add(total.get(k)!, g);
        total.get(k)!.dispose();
        g.dispose();
        total.set(k, sum);
      }
    }
  }
  const grads = total!;
  try {
    if (!Number.isFinite(lossSum)) throw new NonFiniteError(`loss is ${lossSum}`);
    const { gradNorm } = optimizer.apply(grads, lr);
    return { loss: lossSum, gradNorm, tokens };
  } finally {
    for (const g of grads.values()) g.dispose();
  }
}

export async function trainLoop(model: GPT, optimizer: AdamW, source: BatchSource, o: LoopOptions, cb: LoopCallbacks, start: LoopState, metrics: MetricRow[]): Promise<LoopResult> {
  const state: LoopState = { ...start };
  let windowLoss = 0;
  let windowSteps = 0;
  let windowTokens = 0;
  let windowStart = performance.now();
  const runStart = performance.now();
  const elapsedBefore = state.elapsed;
  let lastGradNorm = 0;
  let stopped = false;
  const snapshot = (): LoopState => ({ ...state, elapsed: elapsedBefore + (performance.now() - runStart) / 1000, source: source.state() });

  const evaluateNow = async (row: MetricRow) => {
    if (cb.evaluate) Object.assign(row, await cb.evaluate(state.step));
  };

  while (state.step < o.steps) {
    const lr = learningRate(state.step, o);
    let r: ReturnType<typeof trainStep>;
    try {
      r = withPrecision(o.precision ?? 'fp32', () => trainStep(model, optimizer, source, o.gradAccum, lr, stepDropoutSeed(o.seed, state.step), o.hooks));
    } catch (err) {
      if (err instanceof NonFiniteError) {
        throw new TrainingDiverged(`training diverged at step ${state.step + 1} (${err.message}); the last good checkpoint was kept; lower --lr or raise --warmup`);
      }
      throw err;
    }
    state.step += 1;
    state.tokens += r.tokens;
    windowLoss += r.loss;
    windowSteps += 1;
    windowTokens += r.tokens;
    lastGradNorm = r.gradNorm;

    const isLast = state.step === o.steps;
    const isEval = isLast || (o.evalInterval > 0 && state.step % o.evalInterval === 0);
    const isLog = isEval || state.step % o.logInterval === 0;
    if (isLog) {
      const now = performance.now();
      const seconds = (now - windowStart) / 1000;
      const tokensPerSecond = windowTokens / Math.max(seconds, 1e-9);
      const secondsPerStep = seconds / windowSteps;
      const row: MetricRow = {
        step: state.step,
        tokens: state.tokens,
        loss: windowLoss / windowSteps,
        lr,
        grad_norm: lastGradNorm,
        tokens_per_s: tokensPerSecond,
        elapsed_s: elapsedBefore + (now - runStart) / 1000,
      };
      if (isEval) await evaluateNow(row);
      metrics.push(row);
      cb.progress?.(state.step, o.steps, {
        loss: (windowLoss / windowSteps).toFixed(4),
        'tok/s': Math.round(tokensPerSecond),
        eta: formatSeconds(secondsPerStep * (o.steps - state.step)),
      });
      if (isEval) cb.log?.(formatEvalRow(row));
      windowLoss = 0;
      windowSteps = 0;
      windowTokens = 0;
      windowStart = performance.now();
    }
    // Let signal handlers (Ctrl-C, SIGTERM) and timers run between steps: a step is synchronous.
    await new Promise<void>((res) => setImmediate(res));
    const stopNow = cb.shouldStop?.() ?? false;
    if (isLast || stopNow || (o.checkpointInterval > 0 && state.step % o.checkpointInterval === 0)) {
      const pause = performance.now();
      cb.save(snapshot(), metrics);
      // Do not count checkpoint writing as training time in tokens/s.
      windowStart += performance.now() - pause;
    }
    if (stopNow && !isLast) {
      stopped = true;
      break;
    }
  }
  return { state: snapshot(), metrics, stopped };
}

export function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return '?';
  if (s < 60) return `${Math.round(s)}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(Math.round(s % 60)).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.round((s % 3600) / 60)).padStart(2, '0')}m`;
}

function formatEvalRow(row: MetricRow): string {
  const parts = [`step ${row.step}`];
  for (const [k, v] of Object.entries(row)) {
    if (['step', 'lr', 'tokens', 'elapsed_s', 'grad_norm'].includes(k) || typeof v !== 'number') continue;
    parts.push(`${k} ${Number.isInteger(v) ? v : v.toFixed(4)}`);
  }
  return parts.join(' | ');
}
