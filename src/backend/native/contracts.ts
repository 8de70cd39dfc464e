/**
 * The contracts of the project's own kernels, in one place (tfjs-core's convention: a name
 * constant plus typed inputs and attributes):
 *
 * - the fused training kernels the 'native' backend registers (PersonaLinear, ...): their names,
 *   input keys, attributes and outputs. The model calls them through `runPersonaKernel`, the
 *   backend implements them against the same types (fused.ts), so a wrong name, input key or
 *   attribute does not compile;
 * - the functions of the Node-API addon (native/src/addon.cc): each one's arguments by name, in
 *   order. The addon reports its own list (`signatures()`), unpacks its arguments by these names,
 *   and refuses a call with another number of arguments; a test checks that both lists agree;
 * - the addon's operation codes (element-wise, reduction and matmul engines).
 *
 * No other module names one of these kernels by a string.
 */
import * as tf from '@tensorflow/tfjs';

type Info = tf.TensorInfo;

// ---------------------------------------------------------------- product precision
/**
 * How the fused kernels' matrix products run: 'fp32', or 'bf16' (inputs rounded to bfloat16 inside
 * the addon, products accumulated and written in float32; weights, activations and optimizer
 * state stay float32 everywhere else). Kernels whose attrs take a `precision` default to fp32.
 */
export const PRECISIONS = ['fp32', 'bf16'] as const;
export type Precision = (typeof PRECISIONS)[number];

// ---------------------------------------------------------------- fused kernels: names
export const PersonaLinear = 'PersonaLinear';
export const PersonaLinearGrad = 'PersonaLinearGrad';
export const PersonaLinearGelu = 'PersonaLinearGelu';
export const PersonaLinearGeluGrad = 'PersonaLinearGeluGrad';
export const PersonaLayerNorm = 'PersonaLayerNorm';
export const PersonaLayerNormGrad = 'PersonaLayerNormGrad';
export const PersonaGelu = 'PersonaGelu';
export const PersonaGeluGrad = 'PersonaGeluGrad';
export const PersonaAttention = 'PersonaAttention';
export const PersonaAttentionGrad = 'PersonaAttentionGrad';
export const PersonaSoftmaxXent = 'PersonaSoftmaxXent';
export const PersonaEmbedding = 'PersonaEmbedding';
export const PersonaEmbeddingGrad = 'PersonaEmbeddingGrad';
export const PersonaAdamW = 'PersonaAdamW';
export const PersonaSumSquares = 'PersonaSumSquares';

// ---------------------------------------------------------------- fused kernels: inputs and attributes
/** x [..., K] @ w [K, N] + b [N] -> y [..., N]; with transposeW, w is [N, K] and y = x @ w^T + b. */
export interface PersonaLinearInputs { x: Info; w: Info; b?: Info }
export interface PersonaLinearAttrs { transposeW?: boolean; precision?: Precision }
/** -> [dx (x's shape), dw (w's shape), db [N] when hasBias]. */
export interface PersonaLinearGradInputs { dy: Info; x: Info; w: Info }
export interface PersonaLinearGradAttrs { hasBias: boolean; transposeW?: boolean; precision?: Precision }
/** -> [y = gelu(h), h = x @ w + b]. */
export interface PersonaLinearGeluInputs { x: Info; w: Info; b?: Info }
export interface PersonaLinearGeluAttrs { precision?: Precision }
/** -> [dx, dw, db when hasBias (default true)]. */
export interface PersonaLinearGeluGradInputs { dy: Info; x: Info; w: Info; h: Info }
export interface PersonaLinearGeluGradAttrs { hasBias?: boolean; precision?: Precision }
/** x [..., C] -> [y, mean [rows], rstd [rows]]; eps defaults to 1e-5. */
export interface PersonaLayerNormInputs { x: Info; gamma: Info; beta: Info }
export interface PersonaLayerNormAttrs { eps?: number }
/** -> [dx, dgamma, dbeta]. */
export interface PersonaLayerNormGradInputs { dy: Info; x: Info; gamma: Info; mean: Info; rstd: Info }
export type PersonaLayerNormGradAttrs = Record<string, never>;
/** GPT-2's tanh approximation: -> y. */
export interface PersonaGeluInputs { x: Info }
export type PersonaGeluAttrs = Record<string, never>;
/** -> dx. */
export interface PersonaGeluGradInputs { dy: Info; x: Info }
export type PersonaGeluGradAttrs = Record<string, never>;
/** Causal self-attention over packed qkv [B, T, 3C], scale 1/sqrt(hd) -> [out [B, T, C], probs [B, H, T, T]]. */
export interface PersonaAttentionInputs { qkv: Info }
export interface PersonaAttentionAttrs { nHead: number; precision?: Precision }
/** -> dqkv [B, T, 3C]. */
export interface PersonaAttentionGradInputs { dout: Info; qkv: Info; probs: Info }
export interface PersonaAttentionGradAttrs { nHead: number; precision?: Precision }
/**
 * logits [..., V], targets int32 [N], weights [N] -> [loss (scalar) = sum_i w_i * nll_i /
 * max(sum_i w_i, 1e-8), dlogits (logits' shape, or [0] when computeGrad is false; default true)].
 */
export interface PersonaSoftmaxXentInputs { logits: Info; targets: Info; weights: Info }
export interface PersonaSoftmaxXentAttrs { computeGrad?: boolean }
/** ids int32 [B, T], wte [V, C], wpe [Tmax, C] -> x [B, T, C] = wte[ids] + wpe[t]. */
export interface PersonaEmbeddingInputs { ids: Info; wte: Info; wpe: Info }
export type PersonaEmbeddingAttrs = Record<string, never>;
/** -> [dwte [V, C], dwpe [maxT, C]]. */
export interface PersonaEmbeddingGradInputs { dx: Info; ids: Info }
export interface PersonaEmbeddingGradAttrs { vocabSize: number; maxT: number }
/**
 * [p0, g0, m0, v0, p1, g1, m1, v1, ...] -> scalar 0. IN PLACE: writes the new p, m, v into the
 * existing storage of the p, m, v tensors. p -= lr*wd*p (where decayMask), then p -= lr * mhat /
 * (sqrt(vhat) + eps), with the gradients scaled by gradScale; step is 1-based.
 */
export type PersonaAdamWInputs = Info[];
export interface PersonaAdamWAttrs {
  lr: number; beta1?: number; beta2?: number; eps?: number; weightDecay?: number; step: number; decayMask: boolean[];
  gradScale?: number;
}
/** [x0, x1, ...] -> scalar sum of the squares of every element (double accumulation). */
export type PersonaSumSquaresInputs = Info[];
export type PersonaSumSquaresAttrs = Record<string, never>;

/** Every fused kernel's inputs, attributes and number of outputs. */
export interface PersonaKernelTypes {
  PersonaLinear: { inputs: PersonaLinearInputs; attrs: PersonaLinearAttrs; outputs: 1 };
  PersonaLinearGrad: { inputs: PersonaLinearGradInputs; attrs: PersonaLinearGradAttrs; outputs: 'many' };
  PersonaLinearGelu: { inputs: PersonaLinearGeluInputs; attrs: PersonaLinearGeluAttrs; outputs: 'many' };
  PersonaLinearGeluGrad: { inputs: PersonaLinearGeluGradInputs; attrs: PersonaLinearGeluGradAttrs; outputs: 'many' };
  PersonaLayerNorm: { inputs: PersonaLayerNormInputs; attrs: PersonaLayerNormAttrs; outputs: 'many' };
  PersonaLayerNormGrad: { inputs: PersonaLayerNormGradInputs; attrs: PersonaLayerNormGradAttrs; outputs: 'many' };
  PersonaGelu: { inputs: PersonaGeluInputs; attrs: PersonaGeluAttrs; outputs: 1 };
  PersonaGeluGrad: { inputs: PersonaGeluGradInputs; attrs: PersonaGeluGradAttrs; outputs: 1 };
  PersonaAttention: { inputs: PersonaAttentionInputs; attrs: PersonaAttentionAttrs; outputs: 'many' };
  PersonaAttentionGrad: { inputs: PersonaAttentionGradInputs; attrs: PersonaAttentionGradAttrs; outputs: 1 };
  PersonaSoftmaxXent: { inputs: PersonaSoftmaxXentInputs; attrs: PersonaSoftmaxXentAttrs; outputs: 'many' };
  PersonaEmbedding: { inputs: PersonaEmbeddingInputs; attrs: PersonaEmbeddingAttrs; outputs: 1 };
  PersonaEmbeddingGrad: { inputs: PersonaEmbeddingGradInputs; attrs: PersonaEmbeddingGradAttrs; outputs: 'many' };
  PersonaAdamW: { inputs: PersonaAdamWInputs; attrs: PersonaAdamWAttrs; outputs: 1 };
  PersonaSumSquares: { inputs: PersonaSumSquaresInputs; attrs: PersonaSumSquaresAttrs; outputs: 1 };
}
export type PersonaKernelName = keyof PersonaKernelTypes;
export type KernelInputs<K extends PersonaKernelName> = PersonaKernelTypes[K]['inputs'];
export type KernelAttrs<K extends PersonaKernelName> = PersonaKernelTypes[K]['attrs'];
/** What runPersonaKernel returns: one tensor, or the list of outputs. */
export type KernelResult<K extends PersonaKernelName> = PersonaKernelTypes[K]['outputs'] extends 1 ? tf.Tensor : tf.Tensor[];

/** Input keys ('?' marks an optional one; '...' a list), outputs, and the addon function each kernel calls. */
export interface KernelContract {
  inputs: readonly string[];
  attrs: readonly string[];
  outputs: readonly string[];
  addon: AddonFunction;
}

type InputKeys<K extends PersonaKernelName> = KernelInputs<K> extends Info[] ? '...' : {
  [P in keyof KernelInputs<K>]-?: undefined extends KernelInputs<K>[P] ? `${P & string}?` : P & string;
}[keyof KernelInputs<K>];

/** The runtime form of the contracts above (the input keys are checked against the types). */
export const PERSONA_KERNELS: { readonly [K in PersonaKernelName]: KernelContract & { inputs: readonly InputKeys<K>[]; attrs: readonly (keyof KernelAttrs<K> & string)[] } } = {
  PersonaLinear: { inputs: ['x', 'w', 'b?'], attrs: ['transposeW', 'precision'], outputs: ['y'], addon: 'linear' },
  PersonaLinearGrad: { inputs: ['dy', 'x', 'w'], attrs: ['hasBias', 'transposeW', 'precision'], outputs: ['dx', 'dw', 'db?'], addon: 'linearGrad' },
  PersonaLinearGelu: { inputs: ['x', 'w', 'b?'], attrs: ['precision'], outputs: ['y', 'h'], addon: 'linearGelu' },
  PersonaLinearGeluGrad: { inputs: ['dy', 'x', 'w', 'h'], attrs: ['hasBias', 'precision'], outputs: ['dx', 'dw', 'db?'], addon: 'linearGeluGrad' },
  PersonaLayerNorm: { inputs: ['x', 'gamma', 'beta'], attrs: ['eps'], outputs: ['y', 'mean', 'rstd'], addon: 'layerNorm' },
  PersonaLayerNormGrad: { inputs: ['dy', 'x', 'gamma', 'mean', 'rstd'], attrs: [], outputs: ['dx', 'dgamma', 'dbeta'], addon: 'layerNormGrad' },
  PersonaGelu: { inputs: ['x'], attrs: [], outputs: ['y'], addon: 'gelu' },
  PersonaGeluGrad: { inputs: ['dy', 'x'], attrs: [], outputs: ['dx'], addon: 'geluGrad' },
  PersonaAttention: { inputs: ['qkv'], attrs: ['nHead', 'precision'], outputs: ['out', 'probs'], addon: 'attention' },
  PersonaAttentionGrad: { inputs: ['dout', 'qkv', 'probs'], attrs: ['nHead', 'precision'], outputs: ['dqkv'], addon: 'attentionGrad' },
  PersonaSoftmaxXent: { inputs: ['logits', 'targets', 'weights'], attrs: ['computeGrad'], outputs: ['loss', 'dlogits'], addon: 'softmaxXent' },
  PersonaEmbedding: { inputs: ['ids', 'wte', 'wpe'], attrs: [], outputs: ['x'], addon: 'embedding' },
  PersonaEmbeddingGrad: { inputs: ['dx', 'ids'], attrs: ['vocabSize', 'maxT'], outputs: ['dwte', 'dwpe'], addon: 'embeddingGrad' },
  PersonaAdamW: {
    inputs: ['...'], attrs: ['lr', 'beta1', 'beta2', 'eps', 'weightDecay', 'step', 'decayMask', 'gradScale'], outputs: ['zero'],
    addon: 'adamw',
  },
  PersonaSumSquares: { inputs: ['...'], attrs: [], outputs: ['sum'], addon: 'sumSquares' },
};

export const PERSONA_KERNEL_NAMES = Object.keys(PERSONA_KERNELS) as PersonaKernelName[];

/** True when the current backend registers `name` (checked per call: the backend can change). */
export function hasKernel(name: string): boolean {
  return tf.getKernel(name, tf.getBackend()) !== undefined;
}

/** Run a fused kernel on the current backend, typed by its contract. */
export function runPersonaKernel<K extends PersonaKernelName>(name: K, inputs: KernelInputs<K>, attrs?: KernelAttrs<K>): KernelResult<K> {
  return tf.engine().runKernel(name, inputs as unknown as tf.NamedTensorMap, (attrs ?? {}) as unknown as tf.NamedAttrMap) as unknown as KernelResult<K>;
}

// ---------------------------------------------------------------- the addon
type F32 = Float32Array;
type I32 = Int32Array;
/** float32 or int32 data, for pure copies. */
type Bits32 = Float32Array | Int32Array;

/** A matrix-product engine: 0 auto (per-case default), 1 oneDNN, 2 OpenBLAS, 3 plain loop. */
export type GemmEngine = 0 | 1 | 2 | 3;
export const GEMM_ENGINES = { auto: 0, dnnl: 1, blas: 2, loop: 3 } as const;
/** Codes of the addon's `binary` operations (native/src/common.h BinOp), by tfjs kernel. */
export const BINARY_OPS = { Add: 0, Sub: 1, Multiply: 2, RealDiv: 3, Maximum: 4, Minimum: 5, SquaredDifference: 6 } as const;
/** Codes of the addon's `unary` operations (UnOp), by tfjs kernel (Gelu is the project's own). */
export const UNARY_OPS = {
  Exp: 0, Log: 1, Tanh: 2, Sqrt: 3, Rsqrt: 4, Neg: 5, Square: 6, Reciprocal: 7, Abs: 8, Relu: 9, Sigmoid: 10, Gelu: 11,
} as const;
/** Codes of the addon's `reduce` operations (RedOp), by tfjs kernel. */
export const REDUCE_OPS = { Sum: 0, Max: 1, Min: 2, Mean: 3, Prod: 4 } as const;
/** Activation codes of `matmul`. */
export const MATMUL_ACTS = { none: 0, relu: 1 } as const;

/** Every code table, as the addon's `opCodes()` reports it. */
export const OP_CODES = { binary: BINARY_OPS, unary: UNARY_OPS, reduce: REDUCE_OPS, gemmEngine: GEMM_ENGINES, matmulAct: MATMUL_ACTS };

export interface NativeAddonInfo {
  dnnl: boolean;
  /** oneDNN's version (major.minor.patch) when built with it, else ''. */
  dnnlVersion: string;
  blas: boolean;
  threads: number;
  openmp: boolean;
}

/** What `selfTest` can raise inside the addon, to check that every failure becomes a JS error. */
export type AddonFault = 'bad_alloc' | 'std' | 'unknown' | 'parallel' | 'dnnl';

/**
 * The functions of native/src/addon.cc. Outputs are preallocated by the caller (arrays named
 * like an output: y, dx, out, ...); sizes are non-negative integers; every argument is required.
 */
export interface NativeAddon {
  info(): NativeAddonInfo;
  signatures(): Record<string, string[]>;
  opCodes(): typeof OP_CODES;
  selfTest(fault: AddonFault): void;
  setThreads(n: number): number;
  /** opCase = transA*2 + transB (+4 when batched). */
  setGemmDefault(opCase: number, engine: GemmEngine): void;
  matmul(
    a: F32, b: F32, c: F32, batch: number, batchA: number, batchB: number, M: number, N: number, K: number,
    transA: boolean, transB: boolean, bias: F32 | null, act: number, accumulate: boolean, engine: GemmEngine,
  ): GemmEngine;
  binary(op: number, a: F32, aShape: number[], b: F32, bShape: number[], out: F32, outShape: number[]): void;
  unary(op: number, x: F32, y: F32): void;
  addN(xs: F32[], y: F32): void;
  select(cond: Uint8Array, a: F32, b: F32, out: F32): void;
  reduce(op: number, x: F32, out: F32, outer: number, R: number, inner: number): void;
  softmax(x: F32, y: F32, rows: number, cols: number, log: boolean): void;
  transpose(x: Bits32, y: Bits32, shape: number[], perm: number[]): void;
  slice(x: Bits32, y: Bits32, shape: number[], begin: number[], size: number[]): void;
  splitCols(x: Bits32, outs: Bits32[], outer: number, widths: number[]): void;
  concatCols(ins: Bits32[], y: Bits32, outer: number, widths: number[]): void;
  /** -1, or the position of the first index out of range (nothing useful is written then). */
  gatherRows(x: Bits32, indices: I32, y: Bits32, rows: number, rowSize: number): number;
  segmentSum(x: F32, ids: I32, y: F32, nRows: number, rowSize: number, nSeg: number): void;
  colSum(x: F32, out: F32, rows: number, cols: number): void;
  /**
   * What computes a row-major [M,K] @ [K,N] product with float32 output here, with bf16 inputs
   * when bf16: oneDNN's kernel ("oneDNN brg:avx512_core_amx", ...), or the engine used without it,
   * saying when bf16 is emulated (float32 products of bf16-rounded inputs).
   */
  matmulImpl(M: number, N: number, K: number, bf16: boolean): string;
  // The `bf16` flag of the products below: see Precision.
  linear(x: F32, w: F32, b: F32 | null, y: F32, M: number, K: number, N: number, transW: boolean, bf16: boolean): void;
  linearGrad(dy: F32, x: F32, w: F32, dx: F32, dw: F32, db: F32 | null, M: number, K: number, N: number, transW: boolean, bf16: boolean): void;
  linearGelu(x: F32, w: F32, b: F32 | null, y: F32, h: F32, M: number, K: number, N: number, bf16: boolean): void;
  linearGeluGrad(dy: F32, x: F32, w: F32, h: F32, dx: F32, dw: F32, db: F32 | null, M: number, K: number, N: number, bf16: boolean): void;
  layerNorm(x: F32, gamma: F32, beta: F32, eps: number, y: F32, mean: F32, rstd: F32, rows: number, C: number): void;
  layerNormGrad(dy: F32, x: F32, gamma: F32, mean: F32, rstd: F32, dx: F32, dgamma: F32, dbeta: F32, rows: number, C: number): void;
  gelu(x: F32, y: F32): void;
  geluGrad(dy: F32, x: F32, dx: F32): void;
  attention(qkv: F32, out: F32, probs: F32, B: number, T: number, C: number, H: number, bf16: boolean): void;
  attentionGrad(dout: F32, qkv: F32, probs: F32, dqkv: F32, B: number, T: number, C: number, H: number, bf16: boolean): void;
  softmaxXent(logits: F32, targets: I32, weights: F32, dlogits: F32 | null, N: number, V: number): number;
  embedding(ids: I32, wte: F32, wpe: F32, x: F32, B: number, T: number, C: number, V: number, maxT: number): void;
  embeddingGrad(dx: F32, ids: I32, dwte: F32, dwpe: F32, B: number, T: number, C: number, V: number, maxT: number): void;
  adamw(
    list: F32[], decayMask: boolean[], lr: number, beta1: number, beta2: number, eps: number, weightDecay: number,
    step: number, gradScale: number,
  ): void;
  sumSquares(xs: F32[]): number;
}
export type AddonFunction = keyof NativeAddon;

/** Each addon function's arguments by name, in order (native/src/addon.cc declares the same lists). */
export const ADDON_SIGNATURES = {
  info: [],
  signatures: [],
  opCodes: [],
  selfTest: ['fault'],
  setThreads: ['n'],
  setGemmDefault: ['opCase', 'engine'],
  matmul: ['a', 'b', 'c', 'batch', 'batchA', 'batchB', 'M', 'N', 'K', 'transA', 'transB', 'bias', 'act', 'accumulate', 'engine'],
  binary: ['op', 'a', 'aShape', 'b', 'bShape', 'out', 'outShape'],
  unary: ['op', 'x', 'y'],
  addN: ['xs', 'y'],
  select: ['cond', 'a', 'b', 'out'],
  reduce: ['op', 'x', 'out', 'outer', 'R', 'inner'],
  softmax: ['x', 'y', 'rows', 'cols', 'log'],
  transpose: ['x', 'y', 'shape', 'perm'],
  slice: ['x', 'y', 'shape', 'begin', 'size'],
  splitCols: ['x', 'outs', 'outer', 'widths'],
  concatCols: ['ins', 'y', 'outer', 'widths'],
  gatherRows: ['x', 'indices', 'y', 'rows', 'rowSize'],
  segmentSum: ['x', 'ids', 'y', 'nRows', 'rowSize', 'nSeg'],
  colSum: ['x', 'out', 'rows', 'cols'],
  matmulImpl: ['M', 'N', 'K', 'bf16'],
  linear: ['x', 'w', 'b', 'y', 'M', 'K', 'N', 'transW', 'bf16'],
  linearGrad: ['dy', 'x', 'w', 'dx', 'dw', 'db', 'M', 'K', 'N', 'transW', 'bf16'],
  linearGelu: ['x', 'w', 'b', 'y', 'h', 'M', 'K', 'N', 'bf16'],
  linearGeluGrad: ['dy', 'x', 'w', 'h', 'dx', 'dw', 'db', 'M', 'K', 'N', 'bf16'],
  layerNorm: ['x', 'gamma', 'beta', 'eps', 'y', 'mean', 'rstd', 'rows', 'C'],
  layerNormGrad: ['dy', 'x', 'gamma', 'mean', 'rstd', 'dx', 'dgamma', 'dbeta', 'rows', 'C'],
  gelu: ['x', 'y'],
  geluGrad: ['dy', 'x', 'dx'],
  attention: ['qkv', 'out', 'probs', 'B', 'T', 'C', 'H', 'bf16'],
  attentionGrad: ['dout', 'qkv', 'probs', 'dqkv', 'B', 'T', 'C', 'H', 'bf16'],
  softmaxXent: ['logits', 'targets', 'weights', 'dlogits', 'N', 'V'],
  embedding: ['ids', 'wte', 'wpe', 'x', 'B', 'T', 'C', 'V', 'maxT'],
  embeddingGrad: ['dx', 'ids', 'dwte', 'dwpe', 'B', 'T', 'C', 'V', 'maxT'],
  adamw: ['list', 'decayMask', 'lr', 'beta1', 'beta2', 'eps', 'weightDecay', 'step', 'gradScale'],
  sumSquares: ['xs'],
} as const satisfies { readonly [K in AddonFunction]: readonly string[] };

// Compile-time check: every addon function takes as many arguments as its signature names.
type Arity<F> = F extends (...args: infer P) => unknown ? P['length'] : never;
type ArityMatches = { [K in AddonFunction]: Arity<NativeAddon[K]> extends (typeof ADDON_SIGNATURES)[K]['length'] ? true : false };
const arityMatches: { [K in AddonFunction]: true } = null as unknown as ArityMatches;
void arityMatches;
