/** The metrics log: one row per logged step, as an Arrow table (numbers Float64, text Utf8). */
import { Float64, Table, tableFromIPC, tableToIPC, Utf8, vectorFromArray, type Vector } from 'apache-arrow';

export type MetricValue = number | string | null;
export type MetricRow = Record<string, MetricValue>;

export function metricsToArrow(rows: MetricRow[]): Uint8Array {
  const keys: string[] = [];
  for (const r of rows) for (const k of Object.keys(r)) if (!keys.includes(k)) keys.push(k);
  const cols: Record<string, Vector> = {};
  for (const k of keys) {
    const values = rows.map((r) => (r[k] === undefined ? null : r[k]));
    const isText = values.some((v) => typeof v === 'string');
    cols[k] = isText
      ? vectorFromArray(values.map((v) => (v === null ? null : String(v))), new Utf8())
      : vectorFromArray(values.map((v) => (v === null || !Number.isFinite(v as number) ? null : (v as number))), new Float64());
  }
  return tableToIPC(new Table(cols), 'file');
}

export function metricsFromArrow(bytes: Uint8Array): MetricRow[] {
  const table = tableFromIPC(bytes);
  const names = table.schema.fields.map((f) => f.name);
  const rows: MetricRow[] = [];
  for (let i = 0; i < table.numRows; i++) {
    const row: MetricRow = {};
    for (const n of names) {
      const v = table.getChild(n)!.get(i) as MetricValue;
      if (v !== null) row[n] = v;
    }
    rows.push(row);
  }
  return rows;
}
