/**
 * Batches for training. Pretraining samples random windows of the concatenated token stream
 * (nanoGPT); fine-tuning takes whole chats in shuffled epochs, padded to the longest in the batch,
 * with the loss only on the Assistant's tokens. Both keep their position as plain JSON state, so a
 * resumed run draws exactly the batches an uninterrupted one would have.
 */
import { bucketLength } from '../util/bucket.js';
import { Rng, type RngState } from '../util/rng.js';
import { PAD } from '../tokenizer/vocab.js';

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

/** Random windows of T+1 tokens from one long stream. */
export class WindowSampler implements BatchSource {
  private rng: Rng;

  constructor(
    private readonly stream: Uint16Array,
    private readonly batch: number,
    private readonly T: number,
    seed: number | string,
  ) {
    if (stream.length < T + 2) throw new Error(`the token stream (${stream.length} tokens) is shorter than one window of ${T + 1}`);
    this.rng = new Rng(`windows:${seed}`);
  }

  next(): Batch {
    return windowBatch(this.stream, Array.from({ length: this.batch }, () => this.rng.int(this.stream.length - this.T - 1)), this.T);
  }

  state(): RngState {
    return this.rng.state();
  }

  restore(state: unknown): void {
    this.rng = new Rng(state as RngState);
  }
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
export function chatBatch(rows: ChatRows, indices: number[], maxT: number): Batch {
  const T = bucketLength(Math.max(...indices.map((i) => rows.tokens[i].length - 1)), maxT);
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
    return chatBatch(this.rows, picked, this.maxT);
  }

  state(): EpochState {
    return { ...this.s };
  }

  restore(state: unknown): void {
    this.s = { ...(state as EpochState) };
    this.shuffle();
  }
}
