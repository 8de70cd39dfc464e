/** Shared helpers for the native backend's kernels. */
import * as tf from '@tensorflow/tfjs';
import type { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';

export type Backend = MathBackendCPU;
export type TensorInfo = tf.TensorInfo;

export function sizeOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** The tensor's stored values (cpu backend storage). */
export function valuesOf(b: Backend, t: TensorInfo): unknown {
  return b.data.get(t.dataId).values;
}

/** The Float32Array behind a float32 tensor, or null (other dtype, or not a Float32Array). */
export function f32(b: Backend, t: TensorInfo): Float32Array | null {
  if (t.dtype !== 'float32') return null;
  const v = valuesOf(b, t);
  return v instanceof Float32Array ? v : null;
}

/** The 32-bit array behind a float32 or int32 tensor (for pure copies), or null. */
export function bits32(b: Backend, t: TensorInfo): Float32Array | Int32Array | null {
  const v = valuesOf(b, t);
  if (t.dtype === 'float32' && v instanceof Float32Array) return v;
  if (t.dtype === 'int32' && v instanceof Int32Array) return v;
  return null;
}

/** An Int32Array view of an int32 tensor (converting float32 ids if needed). */
export function i32(b: Backend, t: TensorInfo): Int32Array {
  const v = valuesOf(b, t);
  if (v instanceof Int32Array) return v;
  if (v instanceof Float32Array || v instanceof Uint8Array) return Int32Array.from(v);
  throw new Error(`expected an int32 tensor, got ${t.dtype}`);
}

interface Pooled {
  pool?: { takeF32(n: number): Float32Array; takeI32(n: number): Int32Array };
}

/**
 * An output array for a kernel: recycled from the native backend's pool when there is one, so its
 * contents are arbitrary: the kernel must write every element.
 */
export function allocF32(b: Backend, n: number): Float32Array {
  const pool = (b as Pooled).pool;
  return pool ? pool.takeF32(n) : new Float32Array(n);
}

/** Like allocF32, of the same kind (float32 or int32) as `like`. */
export function alloc32(b: Backend, like: Float32Array | Int32Array, n: number): Float32Array | Int32Array {
  const pool = (b as Pooled).pool;
  if (like instanceof Int32Array) return pool ? pool.takeI32(n) : new Int32Array(n);
  return pool ? pool.takeF32(n) : new Float32Array(n);
}

export function out(b: Backend, shape: number[], values: Float32Array | Int32Array, dtype?: tf.DataType): TensorInfo {
  return b.makeTensorInfo(shape, dtype ?? (values instanceof Int32Array ? 'int32' : 'float32'), values);
}

export function requireF32(b: Backend, t: TensorInfo | undefined, name: string, kernel: string): Float32Array {
  if (t == null) throw new Error(`${kernel}: missing input '${name}'`);
  const v = f32(b, t);
  if (v == null) throw new Error(`${kernel}: input '${name}' must be float32 (got ${t.dtype})`);
  return v;
}
