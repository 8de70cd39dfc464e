/**
 * Parquet copies of Arrow IPC files, written by parquet-wasm (Apache Arrow's Rust Parquet writer
 * compiled to WebAssembly), so the results open in tools that read Parquet but not Arrow IPC
 * without a download (DuckDB's read_parquet is built in; its Arrow reader is an extension fetched
 * at run time). Loaded on first use: the WebAssembly module costs nothing to commands that do not
 * write Parquet.
 */
import { readFileSync } from 'node:fs';
import { tableFromIPC, tableToIPC } from 'apache-arrow';
import { writeBytesAtomic } from '../util/atomic-files.js';

/** Write `parquetPath` with the table of the Arrow IPC file `arrowPath` (Snappy-compressed). */
export async function writeParquetCopy(arrowPath: string, parquetPath: string): Promise<void> {
  const pq = await import('parquet-wasm');
  // parquet-wasm reads the IPC stream format; the project's files are IPC files.
  const stream = tableToIPC(tableFromIPC(readFileSync(arrowPath)), 'stream');
  const table = pq.Table.fromIPCStream(stream);
  const props = new pq.WriterPropertiesBuilder().setCompression(pq.Compression.SNAPPY).build();
  writeBytesAtomic(parquetPath, pq.writeParquet(table, props));
}
