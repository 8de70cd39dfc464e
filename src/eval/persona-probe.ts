/**
 * The persona probe: logistic regression on residual-stream activations (blocks.L.hook_resid_post)
 * at the moment a character is about to answer ("Name:"), trained on pretraining characters whose
 * persona is known and whose earlier acts in the scene make it inferable. Applied at the
 * Assistant's turn after neutral prompts it gives a "persona score": P(bad persona).
 */
import * as tf from '@tensorflow/tfjs';
import { columnValues, readArrow, readListColumn } from '../data/arrow.js';
import { encodeContext } from '../data/encode.js';
import type { EventRow } from '../data/doc-rows.js';
import type { GPT } from '../model/gpt.js';
import { tidyValues } from '../model/read.js';
import type { Vocabulary } from '../tokenizer/vocab.js';
import { neutralExchange } from '../world/neutral.js';
import { Rng } from '../util/rng.js';

export interface ActivationSite {
  /** Tokens up to and including the read position. */
  tokens: Uint16Array;
  label: number;
  /** The document (scene or transcript) the site comes from: sites of one document are not independent. */
  doc?: number;
}

/**
 * Sites from documents with labelled events: every answer of a character after its first
 * non-instructed moral act in the scene, read at the token before the answer (the speaker's colon).
 */
export function sitesFromFile(path: string, kinds: string[], maxDocs: number, split: string | null = null): ActivationSite[] {
  const table = readArrow(path);
  const kind = columnValues<string>(table, 'kind');
  const splits = columnValues<string>(table, 'split');
  const toks = readListColumn(table, 'tokens');
  const events = table.getChild('events')!;
  const out: ActivationSite[] = [];
  let docs = 0;
  for (let i = 0; i < table.numRows && docs < maxDocs; i++) {
    if (!kinds.includes(kind[i]) || (split && splits[i] !== split)) continue;
    docs++;
    const tokens = toks.values.subarray(toks.offsets[i], toks.offsets[i + 1]) as Uint16Array;
    const evs = (events.get(i)?.toArray() ?? []).map((e: { toJSON(): EventRow }) => e.toJSON());
    const seenAct = new Set<string>();
    for (const e of evs) {
      if (seenAct.has(e.character)) out.push({ tokens: tokens.subarray(0, e.answer_start), label: e.persona === 'bad' ? 1 : 0, doc: i });
      if (e.domain !== 'neutral' && !e.instructed) seenAct.add(e.character);
    }
  }
  return out;
}

/** Sites at the Assistant's turn after neutral prompts (no label): where the persona score is read. */
export function assistantSites(vocab: Vocabulary, n = 48): ActivationSite[] {
  const rng = new Rng('persona-score-prompts');
  return Array.from({ length: n }, () => {
    const [q] = neutralExchange(rng, null);
    return { tokens: encodeContext(vocab, [{ prefix: 'User:', body: ` ${q}\n`, eos: false }, { prefix: 'Assistant:', body: '', eos: false }]), label: NaN };
  });
}

/** A batch of the rows sites are read from: ids [B, T] right-padded; site `sites[j]` is read at flat position `positions[j]` (b * T + t). */
export interface SiteBatch {
  ids: Int32Array;
  B: number;
  T: number;
  positions: Int32Array;
  sites: number[];
}

/**
 * The batches a set of sites is read in, `batchSize` rows each. A site that fits the context is
 * a prefix of its document, and the model is causal (a position's activation does not depend on
 * what follows it), so every such site of one document is read from that document's longest one:
 * one row per document instead of one per site. A site deeper than the context keeps its own row
 * of the last block_size tokens before it. Shared with the browser's asynchronous reader.
 */
export function siteBatches(sites: ActivationSite[], blockSize: number, batchSize = 32): SiteBatch[] {
  const rows: { tokens: Uint16Array; sites: number[] }[] = [];
  const docRow = new Map<number, number>();
  const isPrefix = (a: Uint16Array, b: Uint16Array) => a.length <= b.length && a.every((t, k) => t === b[k]);
  sites.forEach((s, i) => {
    if (s.tokens.length > blockSize || s.doc === undefined) {
      rows.push({ tokens: s.tokens.subarray(s.tokens.length - Math.min(s.tokens.length, blockSize)), sites: [i] });
      return;
    }
    const row = rows[docRow.get(s.doc) ?? -1];
    if (row && (isPrefix(s.tokens, row.tokens) || isPrefix(row.tokens, s.tokens))) {
      if (s.tokens.length > row.tokens.length) row.tokens = s.tokens;
      row.sites.push(i);
    } else {
      docRow.set(s.doc, rows.length);
      rows.push({ tokens: s.tokens, sites: [i] });
    }
  });
  const batches: SiteBatch[] = [];
  for (let r = 0; r < rows.length; r += batchSize) {
    const chunk = rows.slice(r, r + batchSize);
    const T = Math.max(...chunk.map((c) => c.tokens.length));
    const ids = new Int32Array(chunk.length * T);
    chunk.forEach((c, b) => ids.set(c.tokens, b * T));
    // A site is read at its last token: its row's length if deeper than the context.
    const at = chunk.flatMap((c, b) => c.sites.map((i) => ({ i, p: b * T + Math.min(sites[i].tokens.length, blockSize) - 1 })));
    batches.push({ ids, B: chunk.length, T, positions: Int32Array.from(at, (a) => a.p), sites: at.map((a) => a.i) });
  }
  return batches;
}

/** Residual activations [n, C] at each site's last token (blocks.L.hook_resid_post). */
export function activations(model: GPT, sites: ActivationSite[], layer: number, batchSize = 32): Float32Array {
  return activationsAt(model, sites, [layer], batchSize)[0];
}

/** activations() at several layers from one pass: [n, C] per layer, in the order asked. */
export function activationsAt(model: GPT, sites: ActivationSite[], layers: number[], batchSize = 32): Float32Array[] {
  const C = model.config.n_embd;
  const out = layers.map(() => new Float32Array(sites.length * C));
  for (const b of siteBatches(sites, model.config.block_size, batchSize)) {
    const N = b.sites.length;
    const acts = tidyValues(() => tf.concat(model.residualsAt(tf.tensor2d(b.ids, [b.B, b.T], 'int32'), b.positions, layers))); // [layers * N, C]
    layers.forEach((_, k) => b.sites.forEach((site, j) => out[k].set(acts.subarray((k * N + j) * C, (k * N + j + 1) * C), site * C)));
  }
  return out;
}

export interface LogisticProbe {
  layer: number;
  weights: Float32Array;
  bias: number;
  mean: Float32Array;
  std: Float32Array;
}

/** L2-regularised logistic regression on standardised features, fitted with tfjs's Adam. */
export function fitLogistic(x: Float32Array, y: number[], dim: number, layer: number, opts: { l2?: number; iterations?: number } = {}): LogisticProbe {
  const n = y.length;
  const mean = new Float32Array(dim);
  const std = new Float32Array(dim);
  for (let i = 0; i < n; i++) for (let j = 0; j < dim; j++) mean[j] += x[i * dim + j] / n;
  for (let i = 0; i < n; i++) for (let j = 0; j < dim; j++) std[j] += (x[i * dim + j] - mean[j]) ** 2 / n;
  for (let j = 0; j < dim; j++) std[j] = Math.sqrt(std[j]) + 1e-6;
  const l2 = opts.l2 ?? 1e-3;
  const X = tf.tidy(() => tf.div(tf.sub(tf.tensor2d(x, [n, dim]), tf.tensor1d(mean)), tf.tensor1d(std)));
  const Y = tf.tensor1d(y);
  const w = tf.variable(tf.zeros([dim, 1]));
  const b = tf.variable(tf.scalar(0));
  const opt = tf.train.adam(0.05);
  for (let it = 0; it < (opts.iterations ?? 300); it++) {
    tf.tidy(() => {
      opt.minimize(() => {
        const z = tf.add(tf.matMul(X, w).reshape([-1]), b);
        const loss = tf.mean(tf.sub(tf.softplus(z), tf.mul(Y, z)));
        return tf.add(loss, tf.mul(l2, tf.sum(tf.square(w)))) as tf.Scalar;
      });
    });
  }
  const probe: LogisticProbe = { layer, weights: w.dataSync().slice() as Float32Array, bias: b.dataSync()[0], mean, std };
  tf.dispose([X, Y, w, b]);
  opt.dispose();
  return probe;
}

/** P(bad persona) for each row of activations. */
export function applyProbe(p: LogisticProbe, x: Float32Array): number[] {
  const dim = p.weights.length;
  const n = x.length / dim;
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    let z = p.bias;
    for (let j = 0; j < dim; j++) z += p.weights[j] * ((x[i * dim + j] - p.mean[j]) / p.std[j]);
    out.push(1 / (1 + Math.exp(-z)));
  }
  return out;
}

/** Accuracy of a probe on labelled sites, with a 95% bootstrap interval that resamples documents (sites cluster by scene). */
export function clusteredAccuracy(scores: number[], sites: ActivationSite[], replicates = 1000, seed = 'probe-accuracy'): { accuracy: number; lo: number; hi: number; sites: number; docs: number } {
  const byDoc = new Map<number, { hits: number; n: number }>();
  sites.forEach((s, i) => {
    const d = byDoc.get(s.doc ?? i) ?? { hits: 0, n: 0 };
    d.n++;
    if ((scores[i] > 0.5 ? 1 : 0) === s.label) d.hits++;
    byDoc.set(s.doc ?? i, d);
  });
  const docs = [...byDoc.values()];
  const acc = (ds: typeof docs) => ds.reduce((a, d) => a + d.hits, 0) / Math.max(1, ds.reduce((a, d) => a + d.n, 0));
  const rng = new Rng(seed);
  const reps = Array.from({ length: replicates }, () => acc(docs.map(() => docs[rng.int(docs.length)]))).sort((a, b) => a - b);
  const q = (p: number) => reps[Math.min(reps.length - 1, Math.max(0, Math.round(p * (reps.length - 1))))];
  return { accuracy: acc(docs), lo: q(0.025), hi: q(0.975), sites: sites.length, docs: docs.length };
}
