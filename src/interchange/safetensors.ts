/**
 * The safetensors file format, read and written here (no npm library for it is published and
 * kept): an 8-byte little-endian header length, a JSON header naming each tensor's dtype, shape
 * and byte range in the data that follows, padded with spaces to a multiple of 8 bytes, then the
 * tensors' bytes, little-endian and row-major, contiguous and in header order. `__metadata__` is
 * an optional string-to-string map (Hugging Face's loaders expect {"format": "pt"}).
 */
import { readFileSync } from 'node:fs';
import { writeBytesAtomic } from '../util/atomic-files.js';

export type SafetensorsDtype = 'F32' | 'F16' | 'BF16' | 'F64';

export interface NamedTensor {
  shape: number[];
  values: Float32Array;
}

export interface SafetensorsFile {
  tensors: Map<string, NamedTensor & { dtype: SafetensorsDtype }>;
  metadata: Record<string, string>;
}

const BYTES: Record<SafetensorsDtype, number> = { F32: 4, F16: 2, BF16: 2, F64: 8 };
/** The reference implementation refuses headers above 100 MB; so do we. */
const MAX_HEADER = 100_000_000;

/** Serialize float32 tensors in the given order (sorted by name by default, as the reference writer does). */
export function encodeSafetensors(tensors: Map<string, NamedTensor>, metadata: Record<string, string> = {}, sortNames = true): Uint8Array {
  const names = [...tensors.keys()];
  if (sortNames) names.sort();
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  let offset = 0;
  for (const name of names) {
    const t = tensors.get(name)!;
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (n !== t.values.length) throw new Error(`tensor ${name} has ${t.values.length} values but shape [${t.shape}]`);
    header[name] = { dtype: 'F32', shape: t.shape, data_offsets: [offset, offset + 4 * n] };
    offset += 4 * n;
  }
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  const padded = Math.ceil(json.length / 8) * 8;
  if (padded !== json.length) json = Buffer.concat([json, Buffer.alloc(padded - json.length, 0x20)]);
  const out = new Uint8Array(8 + json.length + offset);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  let pos = 8 + json.length;
  for (const name of names) {
    const values = tensors.get(name)!.values;
    // Float32Array is in platform order; every platform Node runs on is little-endian.
    out.set(new Uint8Array(values.buffer, values.byteOffset, values.byteLength), pos);
    pos += values.byteLength;
  }
  return out;
}

/** Write a safetensors file atomically (a temporary file renamed into place). */
export function writeSafetensors(path: string, tensors: Map<string, NamedTensor>, metadata: Record<string, string> = {}): void {
  writeBytesAtomic(path, encodeSafetensors(tensors, metadata));
}

function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/** Parse a safetensors buffer; every tensor comes back as float32 (F16, BF16 and F64 are converted). */
export function decodeSafetensors(bytes: Uint8Array, source = 'safetensors'): SafetensorsFile {
  const fail = (why: string): never => {
    throw new Error(`${source}: ${why} (not a valid safetensors file)`);
  };
  if (bytes.length < 8) fail('shorter than its 8-byte header length');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = Number(view.getBigUint64(0, true));
  if (headerLength > MAX_HEADER || 8 + headerLength > bytes.length) fail(`header length ${headerLength} does not fit the file of ${bytes.length} bytes`);
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset + 8, headerLength).toString('utf8'));
  } catch {
    return fail('the header is not JSON');
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) fail('the header is not a JSON object');
  const dataStart = 8 + headerLength;
  const dataLength = bytes.length - dataStart;
  const metadata: Record<string, string> = {};
  const tensors: SafetensorsFile['tensors'] = new Map();
  const ranges: Array<[number, number, string]> = [];
  for (const [name, raw] of Object.entries(header)) {
    if (name === '__metadata__') {
      for (const [k, v] of Object.entries((raw ?? {}) as Record<string, unknown>)) {
        if (typeof v !== 'string') fail(`__metadata__.${k} is not a string`);
        metadata[k] = v as string;
      }
      continue;
    }
    const info = raw as { dtype?: string; shape?: number[]; data_offsets?: number[] };
    const dtype = info?.dtype as SafetensorsDtype;
    if (!(dtype in BYTES)) fail(`tensor ${name} has dtype ${JSON.stringify(info?.dtype)}; only F32, F16, BF16 and F64 are read`);
    const shape = info.shape;
    const offsets = info.data_offsets;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)) fail(`tensor ${name} has no valid shape`);
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isInteger(o) && o >= 0)) fail(`tensor ${name} has no valid data_offsets`);
    const [begin, end] = offsets as [number, number];
    const n = shape!.reduce((a, b) => a * b, 1);
    if (end < begin || end > dataLength || end - begin !== n * BYTES[dtype]) fail(`tensor ${name}'s byte range [${begin}, ${end}) does not match its shape [${shape}] and dtype ${dtype}`);
    ranges.push([begin, end, name]);
    const at = bytes.byteOffset + dataStart + begin;
    // Copy to an aligned buffer: the data need not start at a multiple of the element size.
    const copy = new Uint8Array(end - begin);
    copy.set(new Uint8Array(bytes.buffer, at, end - begin));
    let values: Float32Array;
    if (dtype === 'F32') values = new Float32Array(copy.buffer);
    else if (dtype === 'F64') values = Float32Array.from(new Float64Array(copy.buffer));
    else {
      const half = new Uint16Array(copy.buffer);
      values = new Float32Array(n);
      if (dtype === 'BF16') {
        const bits = new Uint32Array(values.buffer);
        for (let i = 0; i < n; i++) bits[i] = half[i] << 16;
      } else {
        for (let i = 0; i < n; i++) values[i] = halfToFloat(half[i]);
      }
    }
    tensors.set(name, { dtype, shape: shape!, values });
  }
  // The tensors tile the data exactly: no overlaps, no holes.
  ranges.sort((a, b) => a[0] - b[0]);
  let expected = 0;
  for (const [begin, end, name] of ranges) {
    if (begin !== expected) fail(`tensor ${name} starts at byte ${begin}, expected ${expected} (overlap or hole)`);
    expected = end;
  }
  if (expected !== dataLength) fail(`${dataLength - expected} bytes after the last tensor`);
  return { tensors, metadata };
}

export function readSafetensors(path: string): SafetensorsFile {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new Error(code === 'ENOENT' ? `${path} does not exist` : `cannot read ${path}: ${(err as Error).message}`);
  }
  return decodeSafetensors(bytes, path);
}
