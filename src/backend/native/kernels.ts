/**
 * Standard tfjs kernels overridden on the 'native' backend. Each handles the common float32 cases
 * natively and calls the cpu backend's implementation for everything else, so results always match
 * tfjs semantics.
 */
import * as tf from '@tensorflow/tfjs';
import { BINARY_OPS, type NativeAddon, REDUCE_OPS, UNARY_OPS } from './contracts.js';
import { type Backend, type TensorInfo, alloc32, allocF32, bits32, f32, out, sizeOf, valuesOf } from './util.js';

type KernelArgs = Parameters<tf.KernelFunc>[0];
type Impl = (args: KernelArgs, b: Backend, cpu: tf.KernelFunc) => TensorInfo | TensorInfo[] | null;

// Op codes of native/src/common.h, by tfjs kernel name (contracts.ts; Gelu has no tfjs kernel).
const BIN = BINARY_OPS;
const UN = Object.fromEntries(Object.entries(UNARY_OPS).filter(([name]) => name !== 'Gelu')) as Omit<typeof UNARY_OPS, 'Gelu'>;
const RED = REDUCE_OPS;

export interface MatmulPlan {
  batch: number; batchA: number; batchB: number; m: number; n: number; k: number; outShape: number[];
}

/** Shapes of a tfjs BatchMatMul, or null when the cpu kernel should handle it. */
export function planMatmul(aShape: number[], bShape: number[], transA: boolean, transB: boolean): MatmulPlan | null {
  const ra = aShape.length, rb = bShape.length;
  if (ra < 2 || rb < 2) return null;
  const k = transA ? aShape[ra - 2] : aShape[ra - 1];
  const kb = transB ? bShape[rb - 1] : bShape[rb - 2];
  const m = transA ? aShape[ra - 1] : aShape[ra - 2];
  const n = transB ? bShape[rb - 2] : bShape[rb - 1];
  if (k !== kb) return null;
  const batchA = sizeOf(aShape.slice(0, -2)), batchB = sizeOf(bShape.slice(0, -2));
  let outer: number[];
  try {
    outer = tf.broadcast_util.assertAndGetBroadcastShape(aShape.slice(0, -2), bShape.slice(0, -2));
  } catch {
    return null;
  }
  const batch = Math.max(batchA, batchB);
  if (!(batchA === batchB || batchA === 1 || batchB === 1) || sizeOf(outer) !== batch) return null;
  return { batch, batchA, batchB, m, n, k, outShape: [...outer, m, n] };
}

function nativeKernels(addon: NativeAddon): Record<string, Impl> {
  const impls: Record<string, Impl> = {};

  // ---------------------------------------------------------------- matmul
  impls[tf.BatchMatMul] = ({ inputs, attrs }, b) => {
    const { a, b: bt } = inputs as { a: TensorInfo; b: TensorInfo };
    const { transposeA, transposeB } = attrs as { transposeA: boolean; transposeB: boolean };
    const av = f32(b, a), bv = f32(b, bt);
    if (!av || !bv) return null;
    const p = planMatmul(a.shape, bt.shape, !!transposeA, !!transposeB);
    if (!p) return null;
    const c = allocF32(b, p.batch * p.m * p.n);
    addon.matmul(av, bv, c, p.batch, p.batchA, p.batchB, p.m, p.n, p.k, !!transposeA, !!transposeB, null, 0, false, 0);
    return out(b, p.outShape, c);
  };

  impls[tf._FusedMatMul] = ({ inputs, attrs }, b) => {
    const { a, b: bt, bias, preluActivationWeights } = inputs as Record<string, TensorInfo | undefined>;
    const { transposeA, transposeB, activation } = attrs as {
      transposeA: boolean; transposeB: boolean; activation?: string;
    };
    const act = activation ?? 'linear';
    if (preluActivationWeights || !['linear', 'relu', 'sigmoid'].includes(act)) return null;
    const av = f32(b, a!), bv = f32(b, bt!);
    if (!av || !bv) return null;
    const p = planMatmul(a!.shape, bt!.shape, !!transposeA, !!transposeB);
    if (!p) return null;
    let biasV: Float32Array | null = null;
    let biasLater = false;
    if (bias) {
      biasV = f32(b, bias);
      if (!biasV) return null;
      const bs = bias.shape;
      const trailing = bs.length <= p.outShape.length && bs.slice(0, -1).every((d) => d === 1);
      if (!(trailing && bs.length >= 1 && bs[bs.length - 1] === p.n)) biasLater = true;
    }
    let c = allocF32(b, p.batch * p.m * p.n);
    addon.matmul(av, bv, c, p.batch, p.batchA, p.batchB, p.m, p.n, p.k, !!transposeA, !!transposeB,
      biasLater ? null : biasV, act === 'relu' && !biasLater ? 1 : 0, false, 0);
    let shape = p.outShape;
    if (biasLater) {
      let oshape: number[];
      try {
        oshape = tf.backend_util.assertAndGetBroadcastShape(shape, bias!.shape);
      } catch {
        return null;
      }
      const r = allocF32(b, sizeOf(oshape));
      addon.binary(BIN.Add, c, shape, biasV!, bias!.shape, r, oshape);
      c = r;
      shape = oshape;
      if (act === 'relu') addon.unary(UN.Relu, c, c);
    }
    if (act === 'sigmoid') addon.unary(UN.Sigmoid, c, c);
    return out(b, shape, c);
  };

  // ---------------------------------------------------------------- element-wise
  for (const [name, op] of Object.entries(BIN)) {
    impls[name] = ({ inputs }, b) => {
      const { a, b: bt } = inputs as { a: TensorInfo; b: TensorInfo };
      const av = f32(b, a), bv = f32(b, bt);
      if (!av || !bv) return null;
      let oshape: number[];
      try {
        oshape = tf.backend_util.assertAndGetBroadcastShape(a.shape, bt.shape);
      } catch {
        return null;
      }
      const o = allocF32(b, sizeOf(oshape));
      if (o.length > 0) addon.binary(op, av, a.shape, bv, bt.shape, o, oshape);
      return out(b, oshape, o);
    };
  }
  for (const [name, op] of Object.entries(UN)) {
    impls[name] = ({ inputs }, b) => {
      const { x } = inputs as { x: TensorInfo };
      const xv = f32(b, x);
      if (!xv) return null;
      const y = allocF32(b, xv.length);
      addon.unary(op, xv, y);
      return out(b, x.shape, y);
    };
  }
  impls[tf.AddN] = ({ inputs }, b) => {
    const ts = (Array.isArray(inputs) ? inputs : Object.values(inputs)) as TensorInfo[];
    if (ts.length === 0) return null;
    const vs: Float32Array[] = [];
    for (const t of ts) {
      const v = f32(b, t);
      if (!v || !tf.util.arraysEqual(t.shape, ts[0].shape)) return null;
      vs.push(v);
    }
    const y = allocF32(b, sizeOf(ts[0].shape));
    if (y.length) addon.addN(vs, y);
    return out(b, ts[0].shape, y);
  };
  impls[tf.Select] = ({ inputs }, b) => {
    const { condition, t, e } = inputs as { condition: TensorInfo; t: TensorInfo; e: TensorInfo };
    const cv = valuesOf(b, condition), tv = f32(b, t), ev = f32(b, e);
    if (!(cv instanceof Uint8Array) || !tv || !ev) return null;
    if (!tf.util.arraysEqual(condition.shape, t.shape) || !tf.util.arraysEqual(t.shape, e.shape)) return null;
    const o = allocF32(b, tv.length);
    if (o.length) addon.select(cv, tv, ev, o);
    return out(b, t.shape, o);
  };

  // ---------------------------------------------------------------- reductions
  for (const [name, op] of Object.entries(RED)) {
    impls[name] = ({ inputs, attrs }, b) => {
      const { x } = inputs as { x: TensorInfo };
      const a = attrs as { axis?: number | number[]; reductionIndices?: number | number[]; keepDims?: boolean };
      const xv = f32(b, x);
      if (!xv) return null;
      const shape = x.shape;
      const axes = [...new Set(tf.util.parseAxisParam(name === tf.Max ? a.reductionIndices! : a.axis!, shape))].sort(
        (p, q) => p - q);
      if (axes.length === 0) return null;
      const [outShape0, redShape] = tf.backend_util.computeOutAndReduceShapes(shape, axes);
      const R = sizeOf(redShape);
      const outSize = sizeOf(outShape0);
      if (R === 0 || xv.length === 0) return null;
      const outShape = a.keepDims ? tf.backend_util.expandShapeToKeepDim(outShape0, axes) : outShape0;
      const o = allocF32(b, outSize);
      // Contiguous block of reduced axes (ignoring size-1 dims)?
      const red = new Set(axes);
      const live = shape.map((d, i) => ({ d, r: red.has(i) })).filter((e) => e.d !== 1);
      const first = live.findIndex((e) => e.r);
      let last = -1;
      for (let i = 0; i < live.length; i++) if (live[i].r) last = i;
      const contiguous = first < 0 || live.slice(first, last + 1).every((e) => e.r);
      if (contiguous) {
        const outer = first < 0 ? outSize : sizeOf(live.slice(0, first).map((e) => e.d));
        const inner = first < 0 ? 1 : sizeOf(live.slice(last + 1).map((e) => e.d));
        addon.reduce(op, xv, o, outer, R, inner);
      } else {
        const kept = shape.map((_, i) => i).filter((i) => !red.has(i));
        const perm = [...kept, ...axes];
        const t = new Float32Array(xv.length);
        addon.transpose(xv, t, shape, perm);
        addon.reduce(op, t, o, outSize, R, 1);
      }
      return out(b, outShape, o);
    };
  }

  impls[tf.Softmax] = ({ inputs, attrs }, b) => {
    const { logits } = inputs as { logits: TensorInfo };
    const { dim } = attrs as { dim: number };
    const xv = f32(b, logits);
    const rank = logits.shape.length;
    if (!xv || rank === 0 || (dim !== -1 && dim !== rank - 1)) return null;
    const cols = logits.shape[rank - 1];
    const y = allocF32(b, xv.length);
    if (xv.length) addon.softmax(xv, y, xv.length / cols, cols, false);
    return out(b, logits.shape, y);
  };

  // ---------------------------------------------------------------- layout
  impls[tf.Transpose] = ({ inputs, attrs }, b) => {
    const { x } = inputs as { x: TensorInfo };
    const { perm } = attrs as { perm: number[] };
    const xv = bits32(b, x);
    if (!xv || perm.length !== x.shape.length) return null;
    const y = alloc32(b, xv, xv.length);
    if (y.length) addon.transpose(xv, y, x.shape, perm);
    return out(b, perm.map((p) => x.shape[p]), y, x.dtype);
  };

  const nativeSlice = (b: Backend, x: TensorInfo, begin: number[], size: number[], shape: number[]) => {
    const xv = bits32(b, x);
    if (!xv) return null;
    const y = alloc32(b, xv, sizeOf(size));
    if (y.length) addon.slice(xv, y, x.shape, begin, size);
    return out(b, shape, y, x.dtype);
  };
  impls[tf.Slice] = ({ inputs, attrs }, b) => {
    const { x } = inputs as { x: TensorInfo };
    const { begin, size } = attrs as { begin: number | number[]; size?: number | number[] };
    if (x.shape.length === 0) return null;
    const [$begin, $size] = tf.slice_util.parseSliceParams(x, begin, size);
    tf.slice_util.assertParamsValid(x, $begin, $size);
    // Contiguous slices are zero-copy views in the cpu kernel.
    if (tf.slice_util.isSliceContinous(x.shape, $begin, $size)) return null;
    return nativeSlice(b, x, $begin, $size, $size);
  };
  impls[tf.StridedSlice] = ({ inputs, attrs }, b) => {
    const { x } = inputs as { x: TensorInfo };
    const a = attrs as {
      begin: number[]; end: number[]; strides: number[]; beginMask: number; endMask: number; ellipsisMask: number;
      newAxisMask: number; shrinkAxisMask: number;
    };
    if (x.shape.length === 0) return null;
    const info = tf.slice_util.sliceInfo(x.shape, a.begin, a.end, a.strides, a.beginMask, a.endMask, a.ellipsisMask,
      a.newAxisMask, a.shrinkAxisMask);
    if (info.isIdentity || !(info.sliceDim0 || info.isSimpleSlice)) return null;
    const size = tf.slice_util.computeOutShape(info.begin, info.end, info.strides);
    if (size.length !== x.shape.length || size.some((s, i) => s < 0 || info.begin[i] + s > x.shape[i])) return null;
    if (tf.slice_util.isSliceContinous(x.shape, info.begin, size)) return null;
    return nativeSlice(b, x, info.begin, size, info.finalShape);
  };
  impls[tf.SplitV] = ({ inputs, attrs }, b) => {
    const { x } = inputs as { x: TensorInfo };
    const { numOrSizeSplits, axis } = attrs as { numOrSizeSplits: number | number[]; axis: number };
    const xv = bits32(b, x);
    if (!xv) return null;
    const ax = tf.util.parseAxisParam(axis, x.shape)[0];
    const sizes = tf.backend_util.prepareSplitSize(x, numOrSizeSplits, ax);
    const outer = sizeOf(x.shape.slice(0, ax));
    const inner = sizeOf(x.shape.slice(ax + 1));
    const outs = sizes.map((s) => alloc32(b, xv, outer * s * inner));
    if (xv.length) addon.splitCols(xv, outs, outer, sizes.map((s) => s * inner));
    return outs.map((o, i) => {
      const shape = x.shape.slice();
      shape[ax] = sizes[i];
      return out(b, shape, o, x.dtype);
    });
  };
  impls[tf.Concat] = ({ inputs, attrs }, b) => {
    const ts = (Array.isArray(inputs) ? inputs : Object.values(inputs)) as TensorInfo[];
    const { axis } = attrs as { axis: number };
    if (ts.length < 2) return null;
    const dtype = ts[0].dtype;
    const ax = tf.util.parseAxisParam(axis, ts[0].shape)[0];
    const shapes = ts.map((t) => t.shape);
    tf.backend_util.assertParamsConsistent(shapes, ax);
    const outShape = tf.backend_util.computeOutShape(shapes, ax);
    const vs: (Float32Array | Int32Array)[] = [];
    for (const t of ts) {
      const v = t.dtype === dtype ? bits32(b, t) : null;
      if (!v) return null;
      vs.push(v);
    }
    const outer = sizeOf(outShape.slice(0, ax));
    const y = alloc32(b, vs[0], sizeOf(outShape));
    if (y.length) addon.concatCols(vs, y, outer, shapes.map((s) => sizeOf(s.slice(ax))));
    return out(b, outShape, y, dtype);
  };
  impls[tf.GatherV2] = ({ inputs, attrs }, b) => {
    const { x, indices } = inputs as { x: TensorInfo; indices: TensorInfo };
    const { axis, batchDims } = attrs as { axis: number; batchDims?: number };
    const xv = bits32(b, x);
    const iv = valuesOf(b, indices);
    if (!xv || !(iv instanceof Int32Array) || (batchDims ?? 0) !== 0 || x.shape.length === 0) return null;
    if (tf.util.parseAxisParam(axis, x.shape)[0] !== 0) return null;
    const rows = x.shape[0], rowSize = sizeOf(x.shape.slice(1));
    const y = alloc32(b, xv, iv.length * rowSize);
    if (y.length && addon.gatherRows(xv, iv, y, rows, rowSize) >= 0) return null;  // bad index: cpu throws
    return out(b, [...indices.shape, ...x.shape.slice(1)], y, x.dtype);
  };
  impls[tf.UnsortedSegmentSum] = ({ inputs, attrs }, b) => {
    const { x, segmentIds } = inputs as { x: TensorInfo; segmentIds: TensorInfo };
    const { numSegments } = attrs as { numSegments: number };
    const xv = f32(b, x);
    const iv = valuesOf(b, segmentIds);
    if (!xv || !(iv instanceof Int32Array)) return null;
    const sr = segmentIds.shape.length;
    if (sr === 0 || !tf.util.arraysEqual(x.shape.slice(0, sr), segmentIds.shape)) return null;
    const nRows = iv.length, rowSize = sizeOf(x.shape.slice(sr));
    const y = allocF32(b, numSegments * rowSize);
    if (y.length) addon.segmentSum(xv, iv, y, nRows, rowSize, numSegments);
    return out(b, [numSegments, ...x.shape.slice(sr)], y);
  };

  return impls;
}

/** Per-kernel call counts of the overridden kernels: handled natively vs passed to the cpu kernel. */
export const kernelStats = { native: new Map<string, number>(), fallback: new Map<string, number>() };
export function resetKernelStats(): void {
  kernelStats.native.clear();
  kernelStats.fallback.clear();
}
const bump = (m: Map<string, number>, k: string) => m.set(k, (m.get(k) ?? 0) + 1);

/** Kernel configs for 'native': native implementations with the cpu kernel as fallback. */
export function nativeKernelConfigs(addon: NativeAddon, backendName: string): tf.KernelConfig[] {
  const impls = nativeKernels(addon);
  const configs: tf.KernelConfig[] = [];
  for (const [kernelName, impl] of Object.entries(impls)) {
    const cpu = tf.getKernel(kernelName, 'cpu');
    if (!cpu) continue;
    const cpuFunc = cpu.kernelFunc;
    configs.push({
      kernelName,
      backendName,
      kernelFunc: (args) => {
        const r = impl(args, args.backend as Backend, cpuFunc);
        if (r) {
          bump(kernelStats.native, kernelName);
          return r;
        }
        bump(kernelStats.fallback, kernelName);
        return cpuFunc(args);
      },
    });
  }
  return configs;
}

/** Names of the standard kernels that have a native implementation. */
export function nativeKernelNames(addon: NativeAddon): string[] {
  return Object.keys(nativeKernels(addon));
}
