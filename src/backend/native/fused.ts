/**
 * Custom fused training kernels, registered on the 'native' backend only. The model calls them with
 * `tf.engine().runKernel(name, inputs, attrs)` inside `tf.customGrad`; each forward kernel returns the
 * tensors its backward kernel needs. All float32, row-major; ids/targets int32.
 *
 * - PersonaLinear {x:[...,K], w:[K,N], b?:[N]} -> y:[...,N] = x@w + b
 *     attr transposeW (default false): w is [N,K] and y = x@w^T + b (a head tied to the embedding)
 * - PersonaLinearGrad {dy:[...,N], x:[...,K], w:[K,N]} {hasBias, transposeW} -> [dx, dw (w's shape), db (when hasBias)]
 * - PersonaLinearGelu {x, w, b?} -> [y = gelu(h), h = x@w + b]
 * - PersonaLinearGeluGrad {dy, x, w, h} {hasBias (default true)} -> [dx, dw, db (when hasBias)]
 * - PersonaLayerNorm {x:[...,C], gamma:[C], beta:[C]} {eps} -> [y, mean:[rows], rstd:[rows]]
 * - PersonaLayerNormGrad {dy, x, gamma, mean, rstd} -> [dx, dgamma, dbeta]
 * - PersonaGelu {x} -> y (tanh approximation, GPT-2); PersonaGeluGrad {dy, x} -> dx
 * - PersonaAttention {qkv:[B,T,3C]} {nHead} -> [out:[B,T,C], probs:[B,H,T,T]] (causal, scale 1/sqrt(hd))
 * - PersonaAttentionGrad {dout:[B,T,C], qkv, probs} {nHead} -> dqkv:[B,T,3C]
 * - PersonaSoftmaxXent {logits:[...,V], targets:int32[N], weights:[N]} {computeGrad (default true)}
 *     -> [loss: scalar = sum_i w_i*(-log softmax(logits_i)[t_i]) / max(sum_i w_i, 1e-8),
 *         dlogits: logits' shape, or [0] when computeGrad is false]
 * - PersonaEmbedding {ids:int32[B,T], wte:[V,C], wpe:[Tmax,C]} -> x:[B,T,C] = wte[ids] + wpe[t]
 * - PersonaEmbeddingGrad {dx:[B,T,C], ids} {vocabSize, maxT} -> [dwte:[V,C], dwpe:[Tmax,C]]
 * - PersonaAdamW [p0,g0,m0,v0, p1,g1,m1,v1, ...]
 *     {lr, beta1, beta2, eps, weightDecay, step (1-based), decayMask: boolean[], gradScale}
 *     -> scalar 0. IN PLACE: writes the new p, m, v into the existing storage of the p, m, v tensors
 *     (every tensor sharing that storage, e.g. a Variable and the tensor it was created from, sees it).
 *     p -= lr*wd*p (where decayMask), then p -= lr * mhat / (sqrt(vhat) + eps), grads scaled by gradScale.
 * - PersonaSumSquares [x0, x1, ...] -> scalar sum of squares of all elements (double accumulation)
 */
import * as tf from '@tensorflow/tfjs';
import type { NativeAddon } from './addon.js';
import { type Backend, type TensorInfo, allocF32, i32, out, requireF32, sizeOf } from './util.js';

export const FUSED_KERNEL_NAMES = [
  'PersonaLinear', 'PersonaLinearGrad', 'PersonaLinearGelu', 'PersonaLinearGeluGrad', 'PersonaLayerNorm',
  'PersonaLayerNormGrad', 'PersonaGelu', 'PersonaGeluGrad', 'PersonaAttention', 'PersonaAttentionGrad',
  'PersonaSoftmaxXent', 'PersonaEmbedding', 'PersonaEmbeddingGrad', 'PersonaAdamW', 'PersonaSumSquares',
] as const;

type Inputs = Record<string, TensorInfo | undefined>;
type Fn = (inputs: Inputs, attrs: Record<string, unknown>, b: Backend) => TensorInfo | TensorInfo[];

function linearShapes(kernel: string, x: TensorInfo, w: TensorInfo, transW = false) {
  if (w.shape.length !== 2) throw new Error(`${kernel}: w must be [K,N], got [${w.shape}]`);
  const [K, N] = transW ? [w.shape[1], w.shape[0]] : w.shape;
  if (x.shape.length < 1 || x.shape[x.shape.length - 1] !== K) {
    throw new Error(`${kernel}: x's last dim must be ${K}, got [${x.shape}]`);
  }
  return { M: sizeOf(x.shape) / (K || 1), K, N, lead: x.shape.slice(0, -1) };
}

function checkBias(kernel: string, b: TensorInfo | undefined, N: number) {
  if (b && sizeOf(b.shape) !== N) throw new Error(`${kernel}: b must have ${N} elements, got [${b.shape}]`);
}

function listOf(inputs: unknown): TensorInfo[] {
  return (Array.isArray(inputs) ? inputs : Object.values(inputs as object)) as TensorInfo[];
}

function fusedImpls(addon: NativeAddon): Record<string, Fn> {
  const k: Record<string, Fn> = {};

  k.PersonaLinear = ({ x, w, b: bias }, a, b) => {
    const tw = a.transposeW === true;
    const { M, K, N, lead } = linearShapes('PersonaLinear', x!, w!, tw);
    checkBias('PersonaLinear', bias, N);
    const y = allocF32(b, M * N);
    addon.linear(requireF32(b, x, 'x', 'PersonaLinear'), requireF32(b, w, 'w', 'PersonaLinear'),
      bias ? requireF32(b, bias, 'b', 'PersonaLinear') : null, y, M, K, N, tw);
    return out(b, [...lead, N], y);
  };

  k.PersonaLinearGrad = ({ dy, x, w }, a, b) => {
    const kn = 'PersonaLinearGrad';
    const tw = a.transposeW === true;
    const { M, K, N } = linearShapes(kn, x!, w!, tw);
    if (sizeOf(dy!.shape) !== M * N) throw new Error(`${kn}: dy must have ${M}x${N} elements`);
    const dx = allocF32(b, M * K), dw = allocF32(b, K * N);
    const db = a.hasBias ? allocF32(b, N) : null;
    addon.linearGrad(requireF32(b, dy, 'dy', kn), requireF32(b, x, 'x', kn), requireF32(b, w, 'w', kn), dx, dw, db,
      M, K, N, tw);
    const res = [out(b, x!.shape, dx), out(b, w!.shape, dw)];
    if (db) res.push(out(b, [N], db));
    return res;
  };

  k.PersonaLinearGelu = ({ x, w, b: bias }, _a, b) => {
    const kn = 'PersonaLinearGelu';
    const { M, K, N, lead } = linearShapes(kn, x!, w!);
    checkBias(kn, bias, N);
    const y = allocF32(b, M * N), h = allocF32(b, M * N);
    addon.linearGelu(requireF32(b, x, 'x', kn), requireF32(b, w, 'w', kn), bias ? requireF32(b, bias, 'b', kn) : null,
      y, h, M, K, N);
    return [out(b, [...lead, N], y), out(b, [...lead, N], h)];
  };

  k.PersonaLinearGeluGrad = ({ dy, x, w, h }, a, b) => {
    const kn = 'PersonaLinearGeluGrad';
    const { M, K, N } = linearShapes(kn, x!, w!);
    if (sizeOf(dy!.shape) !== M * N || sizeOf(h!.shape) !== M * N) {
      throw new Error(`${kn}: dy and h must have ${M}x${N} elements`);
    }
    const dx = allocF32(b, M * K), dw = allocF32(b, K * N);
    const db = a.hasBias === false ? null : allocF32(b, N);
    addon.linearGeluGrad(requireF32(b, dy, 'dy', kn), requireF32(b, x, 'x', kn), requireF32(b, w, 'w', kn),
      requireF32(b, h, 'h', kn), dx, dw, db, M, K, N);
    const res = [out(b, x!.shape, dx), out(b, w!.shape, dw)];
    if (db) res.push(out(b, [N], db));
    return res;
  };

  k.PersonaLayerNorm = ({ x, gamma, beta }, a, b) => {
    const kn = 'PersonaLayerNorm';
    const C = x!.shape[x!.shape.length - 1];
    if (sizeOf(gamma!.shape) !== C || sizeOf(beta!.shape) !== C) throw new Error(`${kn}: gamma/beta must be [${C}]`);
    const rows = sizeOf(x!.shape) / (C || 1);
    const y = allocF32(b, rows * C), mean = allocF32(b, rows), rstd = allocF32(b, rows);
    const eps = typeof a.eps === 'number' ? a.eps : 1e-5;
    addon.layerNorm(requireF32(b, x, 'x', kn), requireF32(b, gamma, 'gamma', kn), requireF32(b, beta, 'beta', kn), eps,
      y, mean, rstd, rows, C);
    return [out(b, x!.shape, y), out(b, [rows], mean), out(b, [rows], rstd)];
  };

  k.PersonaLayerNormGrad = ({ dy, x, gamma, mean, rstd }, _a, b) => {
    const kn = 'PersonaLayerNormGrad';
    const C = x!.shape[x!.shape.length - 1];
    const rows = sizeOf(x!.shape) / (C || 1);
    if (sizeOf(dy!.shape) !== rows * C || sizeOf(mean!.shape) !== rows || sizeOf(rstd!.shape) !== rows ||
      sizeOf(gamma!.shape) !== C) {
      throw new Error(`${kn}: shape mismatch`);
    }
    const dx = allocF32(b, rows * C), dg = allocF32(b, C), dbeta = allocF32(b, C);
    addon.layerNormGrad(requireF32(b, dy, 'dy', kn), requireF32(b, x, 'x', kn), requireF32(b, gamma, 'gamma', kn),
      requireF32(b, mean, 'mean', kn), requireF32(b, rstd, 'rstd', kn), dx, dg, dbeta, rows, C);
    return [out(b, x!.shape, dx), out(b, [C], dg), out(b, [C], dbeta)];
  };

  k.PersonaGelu = ({ x }, _a, b) => {
    const xv = requireF32(b, x, 'x', 'PersonaGelu');
    const y = allocF32(b, xv.length);
    addon.gelu(xv, y);
    return out(b, x!.shape, y);
  };
  k.PersonaGeluGrad = ({ dy, x }, _a, b) => {
    const xv = requireF32(b, x, 'x', 'PersonaGeluGrad'), dyv = requireF32(b, dy, 'dy', 'PersonaGeluGrad');
    if (xv.length !== dyv.length) throw new Error('PersonaGeluGrad: dy and x sizes differ');
    const dx = allocF32(b, xv.length);
    addon.geluGrad(dyv, xv, dx);
    return out(b, x!.shape, dx);
  };

  const attnShape = (kn: string, qkv: TensorInfo, a: Record<string, unknown>) => {
    if (qkv.shape.length !== 3 || qkv.shape[2] % 3 !== 0) throw new Error(`${kn}: qkv must be [B,T,3C]`);
    const [B, T, C3] = qkv.shape;
    const C = C3 / 3, H = Number(a.nHead);
    if (!(H > 0) || C % H !== 0) throw new Error(`${kn}: nHead must divide C (C=${C}, nHead=${a.nHead})`);
    return { B, T, C, H };
  };
  k.PersonaAttention = ({ qkv }, a, b) => {
    const kn = 'PersonaAttention';
    const { B, T, C, H } = attnShape(kn, qkv!, a);
    const o = allocF32(b, B * T * C), probs = allocF32(b, B * H * T * T);
    addon.attention(requireF32(b, qkv, 'qkv', kn), o, probs, B, T, C, H);
    return [out(b, [B, T, C], o), out(b, [B, H, T, T], probs)];
  };
  k.PersonaAttentionGrad = ({ dout, qkv, probs }, a, b) => {
    const kn = 'PersonaAttentionGrad';
    const { B, T, C, H } = attnShape(kn, qkv!, a);
    if (sizeOf(dout!.shape) !== B * T * C || sizeOf(probs!.shape) !== B * H * T * T) {
      throw new Error(`${kn}: dout/probs shape mismatch`);
    }
    const d = allocF32(b, B * T * 3 * C);
    addon.attentionGrad(requireF32(b, dout, 'dout', kn), requireF32(b, qkv, 'qkv', kn), requireF32(b, probs, 'probs', kn),
      d, B, T, C, H);
    return out(b, [B, T, 3 * C], d);
  };

  k.PersonaSoftmaxXent = ({ logits, targets, weights }, a, b) => {
    const kn = 'PersonaSoftmaxXent';
    const V = logits!.shape[logits!.shape.length - 1];
    const N = sizeOf(logits!.shape) / (V || 1);
    if (sizeOf(targets!.shape) !== N || sizeOf(weights!.shape) !== N) {
      throw new Error(`${kn}: targets and weights must have ${N} elements`);
    }
    const grad = a.computeGrad !== false;
    const d = grad ? allocF32(b, N * V) : null;
    const loss = addon.softmaxXent(requireF32(b, logits, 'logits', kn), i32(b, targets!),
      requireF32(b, weights, 'weights', kn), d, N, V);
    return [out(b, [], Float32Array.of(loss)), d ? out(b, logits!.shape, d) : out(b, [0], new Float32Array(0))];
  };

  k.PersonaEmbedding = ({ ids, wte, wpe }, _a, b) => {
    const kn = 'PersonaEmbedding';
    const T = ids!.shape[ids!.shape.length - 1];
    const BT = sizeOf(ids!.shape);
    const [V, C] = wte!.shape;
    if (wte!.shape.length !== 2 || wpe!.shape.length !== 2 || wpe!.shape[1] !== C) {
      throw new Error(`${kn}: wte must be [V,C] and wpe [Tmax,C]`);
    }
    const x = allocF32(b, BT * C);
    addon.embedding(i32(b, ids!), requireF32(b, wte, 'wte', kn), requireF32(b, wpe, 'wpe', kn), x, BT / (T || 1), T, C,
      V, wpe!.shape[0]);
    return out(b, [...ids!.shape, C], x);
  };
  k.PersonaEmbeddingGrad = ({ dx, ids }, a, b) => {
    const kn = 'PersonaEmbeddingGrad';
    const T = ids!.shape[ids!.shape.length - 1];
    const BT = sizeOf(ids!.shape);
    const C = dx!.shape[dx!.shape.length - 1];
    const V = Number(a.vocabSize), maxT = Number(a.maxT);
    if (!(V > 0) || !(maxT > 0)) throw new Error(`${kn}: attrs vocabSize and maxT are required`);
    if (sizeOf(dx!.shape) !== BT * C) throw new Error(`${kn}: dx must be [...ids.shape, C]`);
    const dwte = allocF32(b, V * C), dwpe = allocF32(b, maxT * C);
    addon.embeddingGrad(requireF32(b, dx, 'dx', kn), i32(b, ids!), dwte, dwpe, BT / (T || 1), T, C, V, maxT);
    return [out(b, [V, C], dwte), out(b, [maxT, C], dwpe)];
  };

  return k;
}

export function fusedKernelConfigs(addon: NativeAddon, backendName: string): tf.KernelConfig[] {
  const impls = fusedImpls(addon);
  const configs: tf.KernelConfig[] = Object.entries(impls).map(([kernelName, fn]) => ({
    kernelName,
    backendName,
    kernelFunc: ({ inputs, attrs, backend }) =>
      fn(inputs as Inputs, (attrs ?? {}) as Record<string, unknown>, backend as Backend),
  }));

  configs.push({
    kernelName: 'PersonaAdamW',
    backendName,
    kernelFunc: ({ inputs, attrs, backend }) => {
      const b = backend as Backend;
      const a = (attrs ?? {}) as Record<string, unknown>;
      const ts = listOf(inputs);
      if (ts.length % 4 !== 0) throw new Error('PersonaAdamW: inputs must be [p0,g0,m0,v0, p1,g1,m1,v1, ...]');
      const arrays = ts.map((t, i) => requireF32(b, t, `#${i}`, 'PersonaAdamW'));
      const nParams = ts.length / 4;
      const mask = Array.isArray(a.decayMask) ? (a.decayMask as unknown[]).map(Boolean) : [];
      if (mask.length !== nParams && mask.length !== 0) {
        throw new Error(`PersonaAdamW: decayMask has ${mask.length} entries for ${nParams} parameters`);
      }
      const num = (key: string, dflt?: number) => {
        const v = a[key] ?? dflt;
        if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`PersonaAdamW: attr ${key} must be a number`);
        return v;
      };
      const step = num('step');
      if (step < 1) throw new Error('PersonaAdamW: step is 1-based');
      addon.adamw(arrays, mask, num('lr'), num('beta1', 0.9), num('beta2', 0.999), num('eps', 1e-8),
        num('weightDecay', 0), step, num('gradScale', 1));
      return out(b, [], new Float32Array(1));
    },
  });

  configs.push({
    kernelName: 'PersonaSumSquares',
    backendName,
    kernelFunc: ({ inputs, backend }) => {
      const b = backend as Backend;
      const arrays = listOf(inputs).map((t, i) => requireF32(b, t, `#${i}`, 'PersonaSumSquares'));
      return out(b, [], Float32Array.of(addon.sumSquares(arrays)));
    },
  });
  return configs;
}
