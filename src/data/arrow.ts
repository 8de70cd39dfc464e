/**
 * Arrow IPC I/O: every dataset, metrics log and evaluation is an Arrow file a user can open in
 * pandas, polars or DuckDB. Files are written to a temporary name and renamed, never half-written
 * (src/util/atomic-files.ts).
 */
import {
  Field, List, makeData, makeVector, Schema, Table, tableFromIPC, tableToIPC, Uint16, Uint8, Int32, Float32,
  type DataType, type Vector,
} from 'apache-arrow';
import { readFileSync } from 'node:fs';
import { writeBytesAtomic } from '../util/atomic-files.js';

type NumericList = Uint16 | Uint8 | Int32 | Float32;
type TypedArrayOf<T extends NumericList> = T extends Uint16 ? Uint16Array : T extends Uint8 ? Uint8Array : T extends Int32 ? Int32Array : Float32Array;

/** A List<number> column built zero-copy from one flat array and row offsets. */
export function listVector<T extends NumericList>(type: T, rows: ArrayLike<number>[]): Vector<List<T>> {
  const offsets = new Int32Array(rows.length + 1);
  for (let i = 0; i < rows.length; i++) offsets[i + 1] = offsets[i] + rows[i].length;
  const Ctor = (type instanceof Uint16 ? Uint16Array : type instanceof Uint8 ? Uint8Array : type instanceof Int32 ? Int32Array : Float32Array) as unknown as new (n: number) => TypedArrayOf<T> & { set(a: ArrayLike<number>, o: number): void };
  const values = new Ctor(offsets[rows.length]);
  rows.forEach((r, i) => values.set(r, offsets[i]));
  const child = makeData({ type, length: values.length, data: values } as never);
  const listType = new List(new Field('item', type as DataType, false));
  return makeVector(makeData({ type: listType, length: rows.length, nullCount: 0, valueOffsets: offsets, child } as never)) as unknown as Vector<List<T>>;
}

/** Write a table atomically; `metadata` goes into the schema (vocabulary hash, config, ...). Returns the file's sha256. */
export function writeArrow(path: string, columns: Record<string, Vector>, metadata: Record<string, string> = {}): string {
  const plain = new Table(columns);
  const schema = new Schema(plain.schema.fields, new Map(Object.entries(metadata)));
  const table = new Table(schema, plain.batches);
  return writeBytesAtomic(path, tableToIPC(table, 'file'));
}

export function readArrow(path: string): Table {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new Error(code === 'ENOENT' ? `${path} does not exist` : `cannot read ${path}: ${(err as Error).message}`);
  }
  // tableFromIPC reads garbage as an empty table: check the IPC file magic (or a stream's continuation marker).
  const isFile = bytes.subarray(0, 6).toString('latin1') === 'ARROW1';
  const isStream = bytes.length >= 4 && bytes.readUInt32LE(0) === 0xffffffff;
  if (!isFile && !isStream) throw new Error(`${path} is not a readable Arrow IPC file (no Arrow header)`);
  try {
    return tableFromIPC(bytes);
  } catch (err) {
    throw new Error(`${path} is not a readable Arrow IPC file (${(err as Error).message})`);
  }
}

export function metadataOf(table: Table): Record<string, string> {
  return Object.fromEntries(table.schema.metadata);
}

/** Check a table has the columns a reader needs; the error names the file and what is missing. */
export function requireColumns(table: Table, columns: string[], source: string): void {
  const have = new Set(table.schema.fields.map((f) => f.name));
  const missing = columns.filter((c) => !have.has(c));
  if (missing.length) throw new Error(`${source} lacks column(s) ${missing.join(', ')}: it is not the expected kind of file`);
}

/** A List<number> column as one flat array plus row offsets (fast path for token streams). */
export function readListColumn(table: Table, name: string): { values: Uint16Array | Uint8Array | Int32Array | Float32Array; offsets: Int32Array } {
  const col = table.getChild(name);
  if (!col) throw new Error(`no column ${name}`);
  const chunks = col.data;
  let total = 0;
  for (const d of chunks) total += d.valueOffsets[d.offset + d.length] - d.valueOffsets[d.offset];
  const sample = chunks[0]?.children[0]?.values;
  const Ctor = (sample?.constructor ?? Uint16Array) as new (n: number) => Uint16Array;
  const values = new Ctor(total);
  const offsets = new Int32Array(table.numRows + 1);
  let row = 0;
  let pos = 0;
  for (const d of chunks) {
    const vo = d.valueOffsets;
    const child = d.children[0].values as Uint16Array;
    const start = vo[d.offset];
    const end = vo[d.offset + d.length];
    values.set(child.subarray(start, end), pos);
    for (let i = 0; i < d.length; i++) offsets[row + i + 1] = pos + vo[d.offset + i + 1] - start;
    row += d.length;
    pos += end - start;
  }
  return { values, offsets };
}

/** A column as plain JS values (strings, numbers, booleans or null). */
export function columnValues<T>(table: Table, name: string): T[] {
  const col = table.getChild(name);
  if (!col) throw new Error(`no column ${name}`);
  return col.toArray() as T[];
}
