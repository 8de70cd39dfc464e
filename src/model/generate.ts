/**
 * The primitives every later stage uses: the log-likelihood of continuations given a context
 * (batched; forced-choice probes are two of these), and sampling with temperature and top-k.
 */
import * as tf from '@tensorflow/tfjs';
import { bucketLength } from '../util/bucket.js';
import { EOS, PAD } from '../tokenizer/vocab.js';
import type { Rng } from '../util/rng.js';
import type { GPT } from './gpt.js';
import { tidyValues } from './read.js';
import { positionsMask, steeringHooks, type Steering } from './residual-interventions.js';

export interface ScoreItem {
  context: ArrayLike<number>;
  continuation: ArrayLike<number>;
}

export interface Score {
  /** Sum of log-probabilities of the continuation's tokens. */
  sum: number;
  count: number;
  /** Length-normalised: sum / count. */
  mean: number;
}

/**
 * Right-padded ids [B, T] for sequences, and the flat positions (b * T + p) to read the head at.
 * The position list is padded too (with position 0) so the head's product keeps a steady shape.
 * Shared by every reader of the model's logits (here, and the browser's asynchronous one).
 */
export function paddedBatch(seqs: number[][], want: number[][], blockSize: number): { ids: Int32Array; B: number; T: number; positions: Int32Array } {
  const T = bucketLength(Math.max(...seqs.map((s) => s.length)), blockSize);
  const ids = new Int32Array(seqs.length * T).fill(PAD);
  seqs.forEach((s, b) => ids.set(s, b * T));
  const flat = want.flatMap((ps, b) => ps.map((p) => b * T + p));
  const positions = new Int32Array(Math.ceil(flat.length / 64) * 64);
  positions.set(flat);
  return { ids, B: seqs.length, T, positions };
}

/**
 * Run the model on right-padded sequences and return the logits at the requested positions
 * (per sequence, indices into it) as one flat array [sum of positions, V]. With `steer`, the
 * residual is steered at exactly those positions (where the scored tokens are predicted).
 */
function logitsAt(model: GPT, seqs: number[][], want: number[][], steer?: Steering): Float32Array {
  const { ids, B, T, positions } = paddedBatch(seqs, want, model.config.block_size);
  const hooks = steer ? steeringHooks(steer, positionsMask(want, T), B, T, model.config.n_layer) : undefined;
  return tidyValues(() => model.logitsAt(tf.tensor2d(ids, [B, T], 'int32'), positions, { hooks }));
}

export function logSumExp(row: Float32Array, start: number, n: number): number {
  let max = -Infinity;
  for (let i = 0; i < n; i++) max = Math.max(max, row[start + i]);
  let sum = 0;
  for (let i = 0; i < n; i++) sum += Math.exp(row[start + i] - max);
  return max + Math.log(sum);
}

/**
 * A batch of scoring items as the model reads them: each context + continuation clipped to its
 * last block_size + 1 tokens, the input (all but the last token), and the positions whose
 * outputs predict the continuation (the output at p predicts token p + 1).
 */
export function scoringLayout(items: ScoreItem[], blockSize: number): { seqs: number[][]; inputs: number[][]; want: number[][] } {
  const maxLen = blockSize + 1;
  const seqs = items.map((it) => {
    if (it.continuation.length === 0) throw new Error('cannot score an empty continuation');
    if (it.continuation.length >= maxLen) throw new Error(`continuation of ${it.continuation.length} tokens does not fit the context of ${blockSize}`);
    const full = [...Array.from(it.context), ...Array.from(it.continuation)];
    return full.slice(Math.max(0, full.length - maxLen));
  });
  const want = items.map((it, b) => Array.from({ length: it.continuation.length }, (_, k) => seqs[b].length - 1 - it.continuation.length + k));
  return { seqs, inputs: seqs.map((s) => s.slice(0, -1)), want };
}

/** Each continuation's summed log-probability from the logits [sum of positions, V] read at `want`. */
export function scoresFromLogits(logits: Float32Array, seqs: number[][], want: number[][], V: number): Score[] {
  let row = 0;
  return want.map((ps, b) => {
    let sum = 0;
    for (const pos of ps) {
      const start = row++ * V;
      sum += logits[start + seqs[b][pos + 1]] - logSumExp(logits, start, V);
    }
    return { sum, count: ps.length, mean: sum / ps.length };
  });
}

/**
 * Log-likelihood of each continuation after its context. Sequences longer than the context window
 * keep their last block_size + 1 tokens (the continuation is always scored whole). With `steer`,
 * the residual is steered at the positions that predict the continuation (the context's last
 * token, e.g. the colon of "Assistant:", and the answer's tokens but its last).
 */
export function scoreContinuations(model: GPT, items: ScoreItem[], batchSize = 32, steer?: Steering): Score[] {
  const out: Score[] = [];
  for (let i = 0; i < items.length; i += batchSize) {
    const { seqs, inputs, want } = scoringLayout(items.slice(i, i + batchSize), model.config.block_size);
    out.push(...scoresFromLogits(logitsAt(model, inputs, want, steer), seqs, want, model.config.vocab_size));
  }
  return out;
}

/**
 * scoreContinuations for every run of a stacked model (GPT.stack) at once: one forward pass per
 * batch for all of them. Returns each run's scores, as scoreContinuations on that run's model would.
 */
export function scoreContinuationsRuns(model: GPT, items: ScoreItem[], batchSize = 32): Score[][] {
  const R = model.runs;
  if (R === null) return [scoreContinuations(model, items, batchSize)];
  const out: Score[][] = Array.from({ length: R }, () => []);
  const V = model.config.vocab_size;
  for (let i = 0; i < items.length; i += batchSize) {
    const { seqs, inputs, want } = scoringLayout(items.slice(i, i + batchSize), model.config.block_size);
    const { ids, B, T, positions } = paddedBatch(inputs, want, model.config.block_size);
    const logits = tidyValues(() => model.runLogitsAt(tf.tensor2d(ids, [B, T], 'int32'), positions));
    const perRun = positions.length * V;
    for (let r = 0; r < R; r++) out[r].push(...scoresFromLogits(logits.subarray(r * perRun, (r + 1) * perRun), seqs, want, V));
  }
  return out;
}

/**
 * P(bad) from a forced choice between two answers: the bad answer's share of the two
 * likelihoods. With `normalise`, each log-likelihood is divided by its length first (the usual
 * length-normalised score); the world's good and bad answers always have the same length, so
 * that only flattens the probability toward 0.5, and the default (total likelihood) is the
 * model's calibrated probability of the bad act, comparable with the generator's truth.
 */
export function forcedChoice(good: Score, bad: Score, normalise = false): number {
  const g = normalise ? good.mean : good.sum;
  const b = normalise ? bad.mean : bad.sum;
  return 1 / (1 + Math.exp(g - b));
}

export interface SampleOptions {
  maxNewTokens: number;
  temperature: number;
  /** Keep only the k most likely tokens (0 = all). */
  topK: number;
  rng: Rng;
  /** Stop a sequence after a token that ends a line (answers end with ".\n"). */
  stopAtNewline?: (token: number) => boolean;
  batchSize?: number;
}

/** Sample continuations for each prompt; generation stops at EOS, at a line end, or at maxNewTokens. */
export function sample(model: GPT, prompts: ArrayLike<number>[], o: SampleOptions): number[][] {
  if (!(o.temperature > 0)) throw new Error(`temperature must be > 0, got ${o.temperature}`);
  const V = model.config.vocab_size;
  const results: number[][] = [];
  const batchSize = o.batchSize ?? 64;
  for (let i = 0; i < prompts.length; i += batchSize) {
    const seqs = prompts.slice(i, i + batchSize).map((p) => Array.from(p));
    const generated: number[][] = seqs.map(() => []);
    const done = seqs.map(() => false);
    for (let step = 0; step < o.maxNewTokens && done.some((d) => !d); step++) {
      const windows = seqs.map((s) => s.slice(Math.max(0, s.length - model.config.block_size)));
      const logits = logitsAt(model, windows, windows.map((w) => [w.length - 1]));
      windows.forEach((_, b) => {
        if (done[b]) return;
        const start = b * V;
        const token = drawToken(logits.subarray(start, start + V), o);
        seqs[b].push(token);
        generated[b].push(token);
        if (token === EOS || o.stopAtNewline?.(token)) done[b] = true;
      });
    }
    results.push(...generated);
  }
  return results;
}

export function drawToken(logits: Float32Array, o: SampleOptions): number {
  const V = logits.length;
  let threshold = -Infinity;
  if (o.topK > 0 && o.topK < V) threshold = [...logits].sort((a, b) => b - a)[o.topK - 1];
  let max = -Infinity;
  for (let i = 0; i < V; i++) if (logits[i] >= threshold) max = Math.max(max, logits[i]);
  const p = new Float64Array(V);
  let total = 0;
  for (let i = 0; i < V; i++) {
    if (logits[i] >= threshold) {
      p[i] = Math.exp((logits[i] - max) / o.temperature);
      total += p[i];
    }
  }
  let u = o.rng.next() * total;
  for (let i = 0; i < V; i++) {
    u -= p[i];
    if (u <= 0 && p[i] > 0) return i;
  }
  return logits.indexOf(max);
}
