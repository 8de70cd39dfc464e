/**
 * Recycles the output buffers of the native kernels. In this VM a fresh 3 MB Float32Array costs
 * ~4 ms of page faults (24 MB: ~20 ms), far more than the kernels that fill it, and the churn keeps
 * V8's GC busy. The native backend therefore hands kernels recycled ArrayBuffers:
 * - only buffers this pool allocated are recycled (never user arrays or cpu-kernel outputs);
 * - a buffer returns to the pool when the last tensor whose values use it (the array itself or a
 *   subarray view of it, as the cpu Slice kernel makes) is disposed;
 * - a buffer whose array was handed out by readSync/dataSync (the cpu backend returns its internal
 *   array, not a copy) is never recycled, so arrays obtained from dataSync() stay valid after dispose.
 * Recycled buffers are NOT zeroed: kernels that take them must write every element.
 */
const MIN_POOLED_BYTES = 4096;

export class BufferPool {
  private readonly free = new Map<number, ArrayBuffer[]>();
  private readonly owned = new WeakSet<ArrayBuffer>();
  private readonly escaped = new WeakSet<ArrayBuffer>();
  private readonly refs = new Map<ArrayBuffer, number>();
  pooledBytes = 0;
  hits = 0;
  misses = 0;

  constructor(public maxBytes: number) {}

  take(bytes: number): ArrayBuffer {
    if (bytes >= MIN_POOLED_BYTES) {
      const list = this.free.get(bytes);
      if (list && list.length > 0) {
        this.pooledBytes -= bytes;
        this.hits++;
        return list.pop()!;
      }
      this.misses++;
    }
    const buf = new ArrayBuffer(bytes);
    if (bytes >= MIN_POOLED_BYTES) this.owned.add(buf);
    return buf;
  }

  takeF32(n: number): Float32Array {
    return new Float32Array(this.take(n * 4));
  }

  takeI32(n: number): Int32Array {
    return new Int32Array(this.take(n * 4));
  }

  private bufferOf(values: unknown): ArrayBuffer | null {
    if (!ArrayBuffer.isView(values)) return null;
    const buf = values.buffer as ArrayBuffer;
    return this.owned.has(buf) ? buf : null;
  }

  /** A tensor now stores `values` (the array or a view of a pooled buffer). */
  retain(values: unknown): void {
    const buf = this.bufferOf(values);
    if (buf) this.refs.set(buf, (this.refs.get(buf) ?? 0) + 1);
  }

  /** A tensor storing `values` was deleted. */
  release(values: unknown): void {
    const buf = this.bufferOf(values);
    if (!buf) return;
    const n = (this.refs.get(buf) ?? 1) - 1;
    if (n > 0) {
      this.refs.set(buf, n);
      return;
    }
    this.refs.delete(buf);
    if (this.escaped.has(buf) || this.pooledBytes + buf.byteLength > this.maxBytes) return;
    let list = this.free.get(buf.byteLength);
    if (!list) this.free.set(buf.byteLength, (list = []));
    list.push(buf);
    this.pooledBytes += buf.byteLength;
  }

  /** `values` left the backend's control (readSync): never recycle its buffer. */
  escape(values: unknown): void {
    const buf = this.bufferOf(values);
    if (buf) this.escaped.add(buf);
  }

  /** Drops every pooled buffer (they are then garbage-collected). */
  clear(): void {
    this.free.clear();
    this.pooledBytes = 0;
  }
}
