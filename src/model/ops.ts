/**
 * The model's building blocks, each written twice behind one signature: a fused kernel with its
 * own gradient where the backend has one (the project's 'native' backend registers Persona*
 * kernels), and a composition of plain tfjs ops everywhere else. The composed versions avoid
 * what is slow or missing on wasm: the embedding has its own gradient (wasm has no
 * UnsortedSegmentSum, gather's gradient) and linear layers differentiate through explicit
 * transposes and untransposed 2-D matmuls (XNNPACK's fast path).
 */
import * as tf from '@tensorflow/tfjs';
import * as Kn from '../backend/native/contracts.js';
import { hasKernel, runPersonaKernel as run } from '../backend/native/contracts.js';
import { productPrecision, type Precision } from '../backend/product-precision.js';

type T = tf.Tensor;

interface Differentiable {
  value: T;
  gradFunc: (dy: T, saved: T[]) => T | T[];
}

/** tf.customGrad with plain positional tensors: `f(inputs, save)`. */
function custom(f: (inputs: T[], save: tf.GradSaveFunc) => Differentiable): (...inputs: T[]) => T {
  const g = tf.customGrad(((...args: Array<T | tf.GradSaveFunc>) => {
    const save = args[args.length - 1] as tf.GradSaveFunc;
    return f(args.slice(0, -1) as T[], save);
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return (...inputs: T[]) => g(...inputs);
}

/** True when the current backend provides the fused kernels (checked per call: the backend can change). */
export function fusedAvailable(): boolean {
  return hasKernel(Kn.PersonaLinear);
}

/**
 * The precision for a layer's products: the fused kernels take it as an attribute; the composed
 * versions have float32 products only, and refuse bf16 rather than silently ignore it.
 */
function precisionFor(fused: boolean): Precision {
  const p = productPrecision();
  if (p !== 'fp32' && !fused) throw new Error(`products in ${p} need the native backend's fused kernels; the ${tf.getBackend()} backend computes in fp32 only`);
  return p;
}

/**
 * x @ w + b on the last axis of x (any leading shape). With `transposeW`, w is [N, K] and the
 * product is x @ w^T (the output head tied to the token embedding).
 */
export function linear(x: T, w: T, b?: T, transposeW = false): T {
  if (w.rank === 3) return stackedLinear(x, w, b, transposeW);
  const fused = fusedAvailable();
  const precision = precisionFor(fused);
  if (fused) {
    const hasBias = b !== undefined;
    const f = custom(([xi, wi, bi], save) => {
      save([xi, wi]);
      return {
        value: run(Kn.PersonaLinear, hasBias ? { x: xi, w: wi, b: bi } : { x: xi, w: wi }, { transposeW, precision }),
        gradFunc: (dy, [xs, ws]) => run(Kn.PersonaLinearGrad, { dy, x: xs, w: ws }, { hasBias, transposeW, precision }),
      };
    });
    return hasBias ? f(x, w, b) : f(x, w);
  }
  if (transposeW) return linear(x, tf.transpose(w), b);
  const lead = x.shape.slice(0, -1);
  const [K, N] = w.shape;
  const product = custom(([xi, wi], save) => {
    save([xi, wi]);
    return {
      value: tf.matMul(xi as tf.Tensor2D, wi as tf.Tensor2D),
      gradFunc: (dy, [xs, ws]) => [
        tf.matMul(dy as tf.Tensor2D, tf.transpose(ws) as tf.Tensor2D),
        tf.matMul(tf.transpose(xs) as tf.Tensor2D, dy as tf.Tensor2D),
      ],
    };
  });
  const y = product(x.reshape([-1, K]), w);
  return (b ? tf.add(y, b) : y).reshape([...lead, N]);
}

/**
 * Stacked runs (sibling fine-tuning runs trained as one model: GPT.stack, runStackedSessions): each parameter
 * has a leading run axis R and so has every activation, x [R, ..., K]. A product is then one
 * batched matmul over the runs: x [R, M, K] @ w [R, K, N] (+ b [R, N]), in fp32.
 */
function stackedLinear(x: T, w: T, b: T | undefined, transposeW: boolean): T {
  const p = productPrecision();
  if (p !== 'fp32') throw new Error(`stacked runs compute their products in fp32 only, not ${p}; train them one by one for ${p}`);
  const [R, d1, d2] = w.shape;
  const [K, N] = transposeW ? [d2, d1] : [d1, d2];
  const lead = x.shape.slice(0, -1);
  const y = tf.matMul(x.reshape([R, -1, K]), w, false, transposeW);
  return (b ? tf.add(y, b.reshape([R, 1, N])) : y).reshape([...lead, N]);
}

const GELU_C = Math.sqrt(2 / Math.PI);

/** GPT-2's tanh approximation of GELU. */
export function gelu(x: T): T {
  if (fusedAvailable()) {
    return custom(([xi], save) => {
      save([xi]);
      return { value: run(Kn.PersonaGelu, { x: xi }), gradFunc: (dy, [xs]) => [run(Kn.PersonaGeluGrad, { dy, x: xs })] };
    })(x);
  }
  const inner = tf.mul(GELU_C, tf.add(x, tf.mul(0.044715, tf.pow(x, 3))));
  return tf.mul(tf.mul(0.5, x), tf.add(1, tf.tanh(inner)));
}

/** gelu(x @ w + b), one fused call where available (the MLP's first half). */
export function linearGelu(x: T, w: T, b: T): T {
  if (hasKernel(Kn.PersonaLinearGelu) && w.rank === 2) {
    const precision = precisionFor(true);
    return custom(([xi, wi, bi], save) => {
      const [y, h] = run(Kn.PersonaLinearGelu, { x: xi, w: wi, b: bi }, { precision });
      save([xi, wi, h]);
      return { value: y, gradFunc: (dy, [xs, ws, hs]) => run(Kn.PersonaLinearGeluGrad, { dy, x: xs, w: ws, h: hs }, { hasBias: true, precision }) };
    })(x, w, b);
  }
  return gelu(linear(x, w, b));
}

export function layerNorm(x: T, gamma: T, beta: T, eps = 1e-5): T {
  if (gamma.rank === 2) {
    // Stacked runs: gamma and beta [R, C] for x [R, ..., C]; normalise with the shared kernel, then scale per run.
    const [R, C] = gamma.shape;
    const perRun = [R, ...Array<number>(x.rank - 2).fill(1), C];
    const normalized = layerNorm(x, tf.ones([C]), tf.zeros([C]), eps);
    return tf.add(tf.mul(normalized, gamma.reshape(perRun)), beta.reshape(perRun));
  }
  if (fusedAvailable()) {
    return custom(([xi, gi, bi], save) => {
      const [y, mean, rstd] = run(Kn.PersonaLayerNorm, { x: xi, gamma: gi, beta: bi }, { eps });
      save([xi, gi, mean, rstd]);
      return { value: y, gradFunc: (dy, [xs, gs, ms, rs]) => run(Kn.PersonaLayerNormGrad, { dy, x: xs, gamma: gs, mean: ms, rstd: rs }) };
    })(x, gamma, beta);
  }
  const { mean, variance } = tf.moments(x, -1, true);
  return tf.add(tf.mul(tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, eps))), gamma), beta);
}

const masks = new Map<number, T>();
/** Additive causal mask [T, T]: 0 on and below the diagonal, -1e9 above. Kept for reuse. */
function causalMask(t: number): T {
  let m = masks.get(t);
  if (!m || m.isDisposed) {
    m = tf.tidy(() => tf.mul(tf.sub(1, tf.linalg.bandPart(tf.ones([t, t]), -1, 0)), -1e9));
    tf.keep(m);
    masks.set(t, m);
  }
  return m;
}

/** Queries, keys and values of packed qkv [B, T, 3C], each [B, H, T, hd]. */
function heads(qkv: T, nHead: number): T[] {
  const [B, Tn, C3] = qkv.shape;
  const hd = C3 / 3 / nHead;
  return tf.split(qkv, 3, -1).map((t) => t.reshape([B, Tn, nHead, hd]).transpose([0, 2, 1, 3]));
}

/** The composed attention probabilities [B, H, T, T] from q and k [B, H, T, hd]. */
function causalProbs(q: T, k: T): T {
  const [, , Tn, hd] = q.shape;
  const scores = tf.add(tf.mul(tf.matMul(q, k, false, true), 1 / Math.sqrt(hd)), causalMask(Tn));
  return tf.softmax(scores, -1);
}

/** The heads' outputs pattern @ v, merged back to [B, T, C]. */
function mergeHeads(pattern: T, v: T): T {
  const [B, H, Tn, hd] = v.shape;
  return tf.matMul(pattern, v).transpose([0, 2, 1, 3]).reshape([B, Tn, H * hd]);
}

/** Causal multi-head self-attention over packed qkv [B, T, 3C] -> [B, T, C], scale 1/sqrt(hd). Differentiable. */
export function attention(qkv: T, nHead: number): T {
  if (qkv.rank > 3) {
    // Stacked runs [R, B, T, 3C]: attention has no parameters, so the runs are more sequences.
    const [Tn, C3] = qkv.shape.slice(-2);
    return attention(qkv.reshape([-1, Tn, C3]), nHead).reshape([...qkv.shape.slice(0, -1), C3 / 3]);
  }
  const fused = fusedAvailable();
  const precision = precisionFor(fused);
  if (fused) {
    return custom(([q], save) => {
      const [out, probs] = run(Kn.PersonaAttention, { qkv: q }, { nHead, precision });
      save([q, probs]);
      return { value: out, gradFunc: (dy, [qs, ps]) => [run(Kn.PersonaAttentionGrad, { dout: dy, qkv: qs, probs: ps }, { nHead, precision })] };
    })(qkv);
  }
  const [q, k, v] = heads(qkv, nHead);
  return mergeHeads(causalProbs(q, k), v);
}

/**
 * The attention probabilities [B, H, T, T] of packed qkv (blocks.L.attn.hook_pattern), for
 * inspection: on the fused path no gradient is recorded through them.
 */
export function attentionPattern(qkv: T, nHead: number): T {
  const fused = fusedAvailable();
  const precision = precisionFor(fused);
  if (fused) return run(Kn.PersonaAttention, { qkv }, { nHead, precision })[1];
  const [q, k] = heads(qkv, nHead);
  return causalProbs(q, k);
}

/** The heads' outputs [B, T, C] for given attention probabilities [B, H, T, T] (an edited pattern) and qkv's values. */
export function attendWith(pattern: T, qkv: T, nHead: number): T {
  return mergeHeads(pattern, heads(qkv, nHead)[2]);
}

/**
 * Token plus position embeddings for ids [B, T] -> [B, T, C]. The gradient is a scatter-add; on
 * backends without UnsortedSegmentSum (wasm) it is done on the host.
 */
export function embed(ids: T, wte: T, wpe: T): T {
  if (wte.rank === 3) return stackedEmbed(ids, wte, wpe);
  const [B, Tn] = ids.shape;
  if (fusedAvailable()) {
    const [V] = wte.shape;
    const maxT = wpe.shape[0];
    return custom(([we, pe]) => ({
      value: run(Kn.PersonaEmbedding, { ids, wte: we, wpe: pe }),
      gradFunc: (dy) => run(Kn.PersonaEmbeddingGrad, { dx: dy, ids }, { vocabSize: V, maxT }),
    }))(wte, wpe);
  }
  const pos = wpe.slice([0, 0], [Tn, -1]);
  return tf.add(gatherRows(wte, ids).reshape([B, Tn, wte.shape[1] as number]), pos.expandDims(0));
}

/** Stacked runs: ids [R, B, T] into each run's own tables wte [R, V, C] and wpe [R, maxT, C] -> [R, B, T, C]. */
function stackedEmbed(ids: T, wte: T, wpe: T): T {
  const [R, V, C] = wte.shape;
  const [, B, Tn] = ids.shape;
  // Run r's token v is row r * V + v of the runs' tables laid end to end.
  const rows = tf.add(ids, tf.range(0, R * V, V, 'int32').reshape([R, 1, 1]));
  const tok = gatherRows(wte.reshape([R * V, C]), rows).reshape([R, B, Tn, C]);
  return tf.add(tok, wpe.slice([0, 0, 0], [R, Tn, C]).reshape([R, 1, Tn, C]));
}

/** table[ids] with a host scatter-add gradient where the backend lacks UnsortedSegmentSum. */
export function gatherRows(table: T, ids: T): T {
  const flat = ids.reshape([-1]);
  if (hasKernel(tf.UnsortedSegmentSum)) return tf.gather(table, flat);
  const [V, C] = table.shape;
  // Read the ids now: intermediate tensors are gone by the time gradients run.
  const idx = flat.dataSync();
  return custom(([tb]) => ({
    value: tf.gather(tb, flat),
    gradFunc: (dy) => {
      const g = new Float32Array(V * C);
      const d = dy.dataSync();
      for (let i = 0; i < idx.length; i++) {
        const row = idx[i] * C;
        for (let j = 0; j < C; j++) g[row + j] += d[i * C + j];
      }
      return [tf.tensor2d(g, [V, C])];
    },
  }))(table);
}

/**
 * Mean cross-entropy over positions weighted by `weights` (the loss mask): sum_i w_i * nll_i /
 * sum_i w_i. logits [N, V], targets int32 [N], weights float32 [N].
 */
export function crossEntropy(logits: T, targets: T, weights: T): T {
  if (fusedAvailable()) {
    return custom(([lg], save) => {
      const [loss, dlogits] = run(Kn.PersonaSoftmaxXent, { logits: lg, targets, weights }, { computeGrad: true });
      save([dlogits]);
      return { value: loss, gradFunc: (dy, [dl]) => [tf.mul(dl, dy)] };
    })(logits);
  }
  const logp = tf.logSoftmax(logits, -1);
  const picked = tf.sum(tf.mul(logp, tf.oneHot(targets, logits.shape[1]!)), -1);
  return tf.div(tf.neg(tf.sum(tf.mul(picked, weights))), tf.maximum(tf.sum(weights), 1e-8));
}

/** Residual dropout (identity when rate is 0 or not training). */
export function dropout(x: T, rate: number, seed: number | undefined): T {
  return rate > 0 && seed !== undefined ? tf.dropout(x, rate, undefined, seed) : x;
}
