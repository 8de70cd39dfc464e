/**
 * Batches for training. Pretraining samples random windows of the concatenated token stream
 * (nanoGPT); fine-tuning takes whole chats in shuffled epochs, padded to the longest in the batch,
 * with the loss only on the Assistant's tokens. Both keep their position as plain JSON state, so a
 * resumed run draws exactly the batches an uninterrupted one would have.
 */
import { bucketLength, LENGTH_BUCKET, TRAIN_LENGTH_BUCKET } from '../util/bucket.js';
import { Rng, type RngState } from '../util/rng.js';
import { BOS, PAD } from '../tokenizer/vocab.js';

export interface Batch {
  /** int32 [batch, T] */
  ids: Int32Array;
  targets: Int32Array;
  /** float32 [batch, T]: 1 where the target counts toward the loss. */
  weights: Float32Array;
  batch: number;
  T: number;
  /** Targets with non-zero weight (trained tokens). */
  tokens: number;
}

export interface BatchSource {
  next(): Batch;
  state(): unknown;
  restore(state: unknown): void;
}

/**
 * Where pretraining windows start: anywhere in the stream (nanoGPT), or at a document's first
 * token (its BOS), so that every window holds the opening of a scene: its cast and first acts.
 */
export const WINDOW_STARTS = ['anywhere', 'documents'] as const;
export type WindowStarts = (typeof WINDOW_STARTS)[number];

/** Random windows of T+1 tokens from one long stream. */
export class WindowSampler implements BatchSource {
  private rng: Rng;
  /** Offsets a window may start at (documents), or null for any offset. */
  private readonly starts: Uint32Array | null;

  constructor(
    private readonly stream: Uint16Array,
    private readonly batch: number,
    private readonly T: number,
    seed: number | string,
    windowStarts: WindowStarts = 'anywhere',
  ) {
    if (stream.length < T + 2) throw new Error(`the token stream (${stream.length} tokens) is shorter than one window of ${T + 1}`);
    this.rng = new Rng(`windows:${seed}`);
    this.starts = windowStarts === 'documents' ? documentStarts(stream, stream.length - T - 1) : null;
    if (this.starts && this.starts.length === 0) throw new Error('--windows documents: the token stream has no document start (BOS) a whole window fits after');
  }

  next(): Batch {
    const starts = this.starts;
    const offsets = Array.from({ length: this.batch }, () => (starts ? starts[this.rng.int(starts.length)] : this.rng.int(this.stream.length - this.T - 1)));
    return windowBatch(this.stream, offsets, this.T);
  }

  state(): RngState {
    return this.rng.state();
  }

  restore(state: unknown): void {
    this.rng = new Rng(state as RngState);
  }
}

/** Offsets of the BOS tokens at or before `last` (each document's first token). */
export function documentStarts(stream: Uint16Array, last: number): Uint32Array {
  const out: number[] = [];
  for (let i = 0; i <= last && i < stream.length; i++) if (stream[i] === BOS) out.push(i);
  return Uint32Array.from(out);
}

/** A batch of windows at the given offsets. */
export function windowBatch(stream: Uint16Array, offsets: number[], T: number): Batch {
  const n = offsets.length;
  const ids = new Int32Array(n * T);
  const targets = new Int32Array(n * T);
  offsets.forEach((o, b) => {
    for (let t = 0; t < T; t++) {
      ids[b * T + t] = stream[o + t];
      targets[b * T + t] = stream[o + t + 1];
    }
  });
  return { ids, targets, weights: new Float32Array(n * T).fill(1), batch: n, T, tokens: n * T };
}

/** Fixed, evenly spaced windows: the same validation batches every time. */
export function fixedWindows(stream: Uint16Array, batches: number, batch: number, T: number): Batch[] {
  const count = batches * batch;
  const span = Math.max(1, stream.length - T - 1);
  const offsets = Array.from({ length: count }, (_, i) => Math.floor((i * span) / count));
  return Array.from({ length: batches }, (_, k) => windowBatch(stream, offsets.slice(k * batch, (k + 1) * batch), T));
}

export interface ChatRows {
  tokens: Uint16Array[];
  masks: Uint8Array[];
}

/** A batch of whole chats: position t predicts token t+1, weighted by the mask of token t+1. */
export function chatBatch(rows: ChatRows, indices: number[], maxT: number, bucket = LENGTH_BUCKET): Batch {
  const T = bucketLength(Math.max(...indices.map((i) => rows.tokens[i].length - 1)), maxT, bucket);
  const n = indices.length;
  const ids = new Int32Array(n * T).fill(PAD);
  const targets = new Int32Array(n * T).fill(PAD);
  const weights = new Float32Array(n * T);
  let tokens = 0;
  indices.forEach((r, b) => {
    const tok = rows.tokens[r];
    const mask = rows.masks[r];
    const len = Math.min(T, tok.length - 1);
    for (let t = 0; t < len; t++) {
      ids[b * T + t] = tok[t];
      targets[b * T + t] = tok[t + 1];
      weights[b * T + t] = mask[t + 1];
      tokens += mask[t + 1];
    }
  });
  return { ids, targets, weights, batch: n, T, tokens };
}

/**
 * Batches of stacked runs as one [R, batch, T] batch: each padded at the end to the longest (the
 * padding has no loss weight, and a causal model's earlier positions never see it).
 */
export function stackBatches(batches: Batch[]): Batch {
  const n = batches[0].batch;
  if (batches.some((b) => b.batch !== n)) throw new Error(`stacked runs need one batch size, got ${batches.map((b) => b.batch).join(', ')}`);
  const T = Math.max(...batches.map((b) => b.T));
  const R = batches.length;
  const ids = new Int32Array(R * n * T).fill(PAD);
  const targets = new Int32Array(R * n * T).fill(PAD);
  const weights = new Float32Array(R * n * T);
  batches.forEach((b, r) => {
    for (let i = 0; i < n; i++) {
      const from = i * b.T;
      const to = (r * n + i) * T;
      ids.set(b.ids.subarray(from, from + b.T), to);
      targets.set(b.targets.subarray(from, from + b.T), to);
      weights.set(b.weights.subarray(from, from + b.T), to);
    }
  });
  return { ids, targets, weights, batch: n, T, tokens: batches.reduce((a, b) => a + b.tokens, 0) };
}

interface EpochState {
  epochRng: RngState;
  epoch: number;
  position: number;
}

/** Chats in shuffled epochs (every row once per epoch). */
export class ChatSampler implements BatchSource {
  private s: EpochState;
  private order: number[] = [];

  constructor(
    private readonly rows: ChatRows,
    private readonly batch: number,
    private readonly maxT: number,
    seed: number | string,
  ) {
    if (rows.tokens.length === 0) throw new Error('no fine-tuning rows to train on');
    this.s = { epochRng: new Rng(`chats:${seed}`).state(), epoch: 0, position: 0 };
    this.shuffle();
  }

  private shuffle(): void {
    this.order = new Rng(this.s.epochRng).shuffle(Array.from({ length: this.rows.tokens.length }, (_, i) => i));
  }

  next(): Batch {
    const picked: number[] = [];
    while (picked.length < this.batch) {
      if (this.s.position >= this.order.length) {
        const r = new Rng(this.s.epochRng);
        r.nextUint32();
        this.s = { epochRng: r.fork(`epoch${this.s.epoch + 1}`).state(), epoch: this.s.epoch + 1, position: 0 };
        this.shuffle();
      }
      picked.push(this.order[this.s.position++]);
    }
    return chatBatch(this.rows, picked, this.maxT, TRAIN_LENGTH_BUCKET);
  }

  state(): EpochState {
    return { ...this.s };
  }

  restore(state: unknown): void {
    this.s = { ...(state as EpochState) };
    this.shuffle();
  }
}
