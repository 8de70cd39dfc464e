/**
 * The fused training kernels, registered on the 'native' backend only: each one's inputs,
 * attributes and outputs are its contract in contracts.ts, which the implementations below are
 * typed against. The model calls them inside `tf.customGrad` (src/model/ops.ts); each forward
 * kernel returns the tensors its backward kernel needs. All float32, row-major (a `precision` of
 * bf16 changes only how the addon computes the products, see contracts.ts); ids and targets
 * int32. Inputs are checked against the contract (missing or unknown keys throw) before a kernel
 * runs, and every size against the others before the addon is called.
 */
import * as tf from '@tensorflow/tfjs';
import * as Kn from './contracts.js';
import {
  type KernelAttrs, type KernelInputs, type NativeAddon, PERSONA_KERNEL_NAMES, PERSONA_KERNELS, type PersonaKernelName,
} from './contracts.js';
import { type Backend, type TensorInfo, allocF32, i32, out, requireF32, sizeOf } from './util.js';

/** The fused kernels' names (the keys of PERSONA_KERNELS). */
export const FUSED_KERNEL_NAMES: readonly PersonaKernelName[] = PERSONA_KERNEL_NAMES;

type Impl<K extends PersonaKernelName> = (inputs: KernelInputs<K>, attrs: KernelAttrs<K>, b: Backend) => TensorInfo | TensorInfo[];
/** One implementation per contract: a kernel missing here does not compile. */
type Impls = { [K in PersonaKernelName]: Impl<K> };

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

/** A finite number attribute (or its default). */
function numAttr(kernel: string, attrs: object, key: string, dflt?: number): number {
  const v = (attrs as Record<string, unknown>)[key] ?? dflt;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`${kernel}: attr ${key} must be a number, got ${String(v)}`);
  return v;
}

/** True for precision 'bf16', false for 'fp32' or none; anything else is refused (attrs are not type-checked at run time). */
function bf16Attr(kernel: string, precision: unknown): boolean {
  if (precision === undefined || precision === 'fp32') return false;
  if (precision === 'bf16') return true;
  throw new Error(`${kernel}: attr precision must be one of ${Kn.PRECISIONS.join(', ')}, got ${String(precision)}`);
}

/** The inputs a kernel received, against its contract: required keys present, no unknown keys. */
export function checkInputs(name: PersonaKernelName, inputs: unknown): void {
  const contract = PERSONA_KERNELS[name];
  if (contract.inputs[0] === '...') return;
  const given = inputs as Record<string, unknown>;
  const known = new Set<string>();
  for (const key of contract.inputs as readonly string[]) {
    const optional = key.endsWith('?');
    const k = optional ? key.slice(0, -1) : key;
    known.add(k);
    if (!optional && given[k] == null) throw new Error(`${name}: missing input '${k}'`);
  }
  for (const k of Object.keys(given)) {
    if (!known.has(k)) throw new Error(`${name}: unknown input '${k}' (expected ${[...known].join(', ')})`);
  }
}

function fusedImpls(addon: NativeAddon): Impls {
  return {
    PersonaLinear: ({ x, w, b: bias }, a, b) => {
      const kn = Kn.PersonaLinear;
      const tw = a.transposeW === true;
      const { M, K, N, lead } = linearShapes(kn, x, w, tw);
      checkBias(kn, bias, N);
      const y = allocF32(b, M * N);
      addon.linear(requireF32(b, x, 'x', kn), requireF32(b, w, 'w', kn), bias ? requireF32(b, bias, 'b', kn) : null, y, M, K, N, tw,
        bf16Attr(kn, a.precision));
      return out(b, [...lead, N], y);
    },

    PersonaLinearGrad: ({ dy, x, w }, a, b) => {
      const kn = Kn.PersonaLinearGrad;
      const tw = a.transposeW === true;
      const { M, K, N } = linearShapes(kn, x, w, tw);
      if (sizeOf(dy.shape) !== M * N) throw new Error(`${kn}: dy must have ${M}x${N} elements`);
      const dx = allocF32(b, M * K), dw = allocF32(b, K * N);
      const db = a.hasBias ? allocF32(b, N) : null;
      addon.linearGrad(requireF32(b, dy, 'dy', kn), requireF32(b, x, 'x', kn), requireF32(b, w, 'w', kn), dx, dw, db, M, K, N, tw,
        bf16Attr(kn, a.precision));
      const res = [out(b, x.shape, dx), out(b, w.shape, dw)];
      if (db) res.push(out(b, [N], db));
      return res;
    },

    PersonaLinearGelu: ({ x, w, b: bias }, a, b) => {
      const kn = Kn.PersonaLinearGelu;
      const { M, K, N, lead } = linearShapes(kn, x, w);
      checkBias(kn, bias, N);
      const y = allocF32(b, M * N), h = allocF32(b, M * N);
      addon.linearGelu(requireF32(b, x, 'x', kn), requireF32(b, w, 'w', kn), bias ? requireF32(b, bias, 'b', kn) : null, y, h, M, K, N,
        bf16Attr(kn, a.precision));
      return [out(b, [...lead, N], y), out(b, [...lead, N], h)];
    },

    PersonaLinearGeluGrad: ({ dy, x, w, h }, a, b) => {
      const kn = Kn.PersonaLinearGeluGrad;
      const { M, K, N } = linearShapes(kn, x, w);
      if (sizeOf(dy.shape) !== M * N || sizeOf(h.shape) !== M * N) throw new Error(`${kn}: dy and h must have ${M}x${N} elements`);
      const dx = allocF32(b, M * K), dw = allocF32(b, K * N);
      const db = a.hasBias === false ? null : allocF32(b, N);
      addon.linearGeluGrad(requireF32(b, dy, 'dy', kn), requireF32(b, x, 'x', kn), requireF32(b, w, 'w', kn), requireF32(b, h, 'h', kn),
        dx, dw, db, M, K, N, bf16Attr(kn, a.precision));
      const res = [out(b, x.shape, dx), out(b, w.shape, dw)];
      if (db) res.push(out(b, [N], db));
      return res;
    },

    PersonaLayerNorm: ({ x, gamma, beta }, a, b) => {
      const kn = Kn.PersonaLayerNorm;
      const C = x.shape[x.shape.length - 1];
      if (sizeOf(gamma.shape) !== C || sizeOf(beta.shape) !== C) throw new Error(`${kn}: gamma/beta must be [${C}]`);
      const rows = sizeOf(x.shape) / (C || 1);
      const y = allocF32(b, rows * C), mean = allocF32(b, rows), rstd = allocF32(b, rows);
      const eps = numAttr(kn, a, 'eps', 1e-5);
      addon.layerNorm(requireF32(b, x, 'x', kn), requireF32(b, gamma, 'gamma', kn), requireF32(b, beta, 'beta', kn), eps, y, mean, rstd,
        rows, C);
      return [out(b, x.shape, y), out(b, [rows], mean), out(b, [rows], rstd)];
    },

    PersonaLayerNormGrad: ({ dy, x, gamma, mean, rstd }, _a, b) => {
      const kn = Kn.PersonaLayerNormGrad;
      const C = x.shape[x.shape.length - 1];
      const rows = sizeOf(x.shape) / (C || 1);
      if (sizeOf(dy.shape) !== rows * C || sizeOf(mean.shape) !== rows || sizeOf(rstd.shape) !== rows || sizeOf(gamma.shape) !== C) {
        throw new Error(`${kn}: shape mismatch`);
      }
      const dx = allocF32(b, rows * C), dg = allocF32(b, C), dbeta = allocF32(b, C);
      addon.layerNormGrad(requireF32(b, dy, 'dy', kn), requireF32(b, x, 'x', kn), requireF32(b, gamma, 'gamma', kn),
        requireF32(b, mean, 'mean', kn), requireF32(b, rstd, 'rstd', kn), dx, dg, dbeta, rows, C);
      return [out(b, x.shape, dx), out(b, [C], dg), out(b, [C], dbeta)];
    },

    PersonaGelu: ({ x }, _a, b) => {
      const xv = requireF32(b, x, 'x', Kn.PersonaGelu);
      const y = allocF32(b, xv.length);
      addon.gelu(xv, y);
      return out(b, x.shape, y);
    },

    PersonaGeluGrad: ({ dy, x }, _a, b) => {
      const xv = requireF32(b, x, 'x', Kn.PersonaGeluGrad), dyv = requireF32(b, dy, 'dy', Kn.PersonaGeluGrad);
      if (xv.length !== dyv.length) throw new Error('PersonaGeluGrad: dy and x sizes differ');
      const dx = allocF32(b, xv.length);
      addon.geluGrad(dyv, xv, dx);
      return out(b, x.shape, dx);
    },

    PersonaAttention: ({ qkv }, a, b) => {
      const kn = Kn.PersonaAttention;
      const { B, T, C, H } = attnShape(kn, qkv, a.nHead);
      const o = allocF32(b, B * T * C), probs = allocF32(b, B * H * T * T);
      addon.attention(requireF32(b, qkv, 'qkv', kn), o, probs, B, T, C, H, bf16Attr(kn, a.precision));
      return [out(b, [B, T, C], o), out(b, [B, H, T, T], probs)];
    },

    PersonaAttentionGrad: ({ dout, qkv, probs }, a, b) => {
      const kn = Kn.PersonaAttentionGrad;
      const { B, T, C, H } = attnShape(kn, qkv, a.nHead);
      if (sizeOf(dout.shape) !== B * T * C || sizeOf(probs.shape) !== B * H * T * T) throw new Error(`${kn}: dout/probs shape mismatch`);
      const d = allocF32(b, B * T * 3 * C);
      addon.attentionGrad(requireF32(b, dout, 'dout', kn), requireF32(b, qkv, 'qkv', kn), requireF32(b, probs, 'probs', kn), d, B, T, C, H,
        bf16Attr(kn, a.precision));
      return out(b, [B, T, 3 * C], d);
    },

    PersonaSoftmaxXent: ({ logits, targets, weights }, a, b) => {
      const kn = Kn.PersonaSoftmaxXent;
      const V = logits.shape[logits.shape.length - 1];
      const N = sizeOf(logits.shape) / (V || 1);
      if (sizeOf(targets.shape) !== N || sizeOf(weights.shape) !== N) throw new Error(`${kn}: targets and weights must have ${N} elements`);
      const grad = a.computeGrad !== false;
      const d = grad ? allocF32(b, N * V) : null;
      const loss = addon.softmaxXent(requireF32(b, logits, 'logits', kn), i32(b, targets), requireF32(b, weights, 'weights', kn), d, N, V);
      return [out(b, [], Float32Array.of(loss)), d ? out(b, logits.shape, d) : out(b, [0], new Float32Array(0))];
    },

    PersonaEmbedding: ({ ids, wte, wpe }, _a, b) => {
      const kn = Kn.PersonaEmbedding;
      const T = ids.shape[ids.shape.length - 1];
      const BT = sizeOf(ids.shape);
      const [V, C] = wte.shape;
      if (wte.shape.length !== 2 || wpe.shape.length !== 2 || wpe.shape[1] !== C) throw new Error(`${kn}: wte must be [V,C] and wpe [Tmax,C]`);
      const x = allocF32(b, BT * C);
      addon.embedding(i32(b, ids), requireF32(b, wte, 'wte', kn), requireF32(b, wpe, 'wpe', kn), x, BT / (T || 1), T, C, V, wpe.shape[0]);
      return out(b, [...ids.shape, C], x);
    },

    PersonaEmbeddingGrad: ({ dx, ids }, a, b) => {
      const kn = Kn.PersonaEmbeddingGrad;
      const T = ids.shape[ids.shape.length - 1];
      const BT = sizeOf(ids.shape);
      const C = dx.shape[dx.shape.length - 1];
      const V = numAttr(kn, a, 'vocabSize'), maxT = numAttr(kn, a, 'maxT');
      if (!(V > 0) || !(maxT > 0)) throw new Error(`${kn}: attrs vocabSize and maxT must be positive`);
      if (sizeOf(dx.shape) !== BT * C) throw new Error(`${kn}: dx must be [...ids.shape, C]`);
      const dwte = allocF32(b, V * C), dwpe = allocF32(b, maxT * C);
      addon.embeddingGrad(requireF32(b, dx, 'dx', kn), i32(b, ids), dwte, dwpe, BT / (T || 1), T, C, V, maxT);
      return [out(b, [V, C], dwte), out(b, [maxT, C], dwpe)];
    },

    PersonaAdamW: (inputs, a, b) => {
      const kn = Kn.PersonaAdamW;
      const ts = listOf(inputs);
      if (ts.length % 4 !== 0) throw new Error(`${kn}: inputs must be [p0,g0,m0,v0, p1,g1,m1,v1, ...]`);
      const arrays = ts.map((t, i) => requireF32(b, t, `#${i}`, kn));
      const nParams = ts.length / 4;
      const mask = Array.isArray(a.decayMask) ? a.decayMask.map(Boolean) : [];
      if (mask.length !== nParams && mask.length !== 0) throw new Error(`${kn}: decayMask has ${mask.length} entries for ${nParams} parameters`);
      const step = numAttr(kn, a, 'step');
      if (step < 1) throw new Error(`${kn}: step is 1-based`);
      addon.adamw(arrays, mask, numAttr(kn, a, 'lr'), numAttr(kn, a, 'beta1', 0.9), numAttr(kn, a, 'beta2', 0.999), numAttr(kn, a, 'eps', 1e-8),
        numAttr(kn, a, 'weightDecay', 0), step, numAttr(kn, a, 'gradScale', 1));
      return out(b, [], new Float32Array(1));
    },

    PersonaSumSquares: (inputs, _a, b) => {
      const arrays = listOf(inputs).map((t, i) => requireF32(b, t, `#${i}`, Kn.PersonaSumSquares));
      return out(b, [], Float32Array.of(addon.sumSquares(arrays)));
    },
  };
}

function attnShape(kn: string, qkv: TensorInfo, nHead: unknown) {
  if (qkv.shape.length !== 3 || qkv.shape[2] % 3 !== 0) throw new Error(`${kn}: qkv must be [B,T,3C]`);
  const [B, T, C3] = qkv.shape;
  const C = C3 / 3, H = Number(nHead);
  if (!Number.isInteger(H) || H < 1 || C % H !== 0) throw new Error(`${kn}: nHead must divide C (C=${C}, nHead=${String(nHead)})`);
  return { B, T, C, H };
}

export function fusedKernelConfigs(addon: NativeAddon, backendName: string): tf.KernelConfig[] {
  const impls = fusedImpls(addon) as unknown as Record<PersonaKernelName, (i: unknown, a: unknown, b: Backend) => TensorInfo | TensorInfo[]>;
  return PERSONA_KERNEL_NAMES.map((kernelName) => ({
    kernelName,
    backendName,
    kernelFunc: ({ inputs, attrs, backend }) => {
      checkInputs(kernelName, inputs);
      return impls[kernelName](inputs, attrs ?? {}, backend as Backend);
    },
  }));
}
