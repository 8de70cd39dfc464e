/** Loading probes.arrow, checked against the model's vocabulary. */
import { columnValues, metadataOf, readArrow, readListColumn, requireColumns } from '../data/arrow.js';
import type { Vocabulary } from '../tokenizer/vocab.js';
import type { Domain } from '../world/lexicon.js';

export interface ProbeRecord {
  id: string;
  kind: string;
  group: number;
  domain: Domain;
  variant: string;
  subject: string;
  evidenceDomain: string;
  trueBad: number | null;
  text: string;
  context: Uint16Array;
  good: Uint16Array;
  bad: Uint16Array;
  goodText: string;
  badText: string;
}

const COLUMNS = ['id', 'kind', 'group', 'domain', 'variant', 'subject', 'evidence_domain', 'true_bad', 'text', 'tokens', 'good', 'bad', 'good_tokens', 'bad_tokens'];

/** Read probes; a file of another schema or another vocabulary is a one-line error. */
export function loadProbes(path: string, vocab: Vocabulary): ProbeRecord[] {
  const table = readArrow(path);
  requireColumns(table, COLUMNS, path);
  const meta = metadataOf(table);
  if (meta.vocab_hash && meta.vocab_hash !== vocab.hash) {
    throw new Error(`${path} was tokenised with vocabulary ${meta.vocab_hash} but the checkpoint uses ${vocab.hash}; regenerate the probes with npm run data`);
  }
  const ids = columnValues<string>(table, 'id');
  const kind = columnValues<string>(table, 'kind');
  const group = columnValues<number>(table, 'group');
  const domain = columnValues<Domain>(table, 'domain');
  const variant = columnValues<string>(table, 'variant');
  const subject = columnValues<string>(table, 'subject');
  const evidence = columnValues<string>(table, 'evidence_domain');
  const trueBad = columnValues<number | null>(table, 'true_bad');
  const text = columnValues<string>(table, 'text');
  const goodText = columnValues<string>(table, 'good');
  const badText = columnValues<string>(table, 'bad');
  const ctx = readListColumn(table, 'tokens');
  const good = readListColumn(table, 'good_tokens');
  const bad = readListColumn(table, 'bad_tokens');
  const slice = (c: { values: ArrayLike<number> & { subarray(a: number, b: number): unknown }; offsets: Int32Array }, i: number) =>
    c.values.subarray(c.offsets[i], c.offsets[i + 1]) as Uint16Array;
  const out: ProbeRecord[] = [];
  for (let i = 0; i < table.numRows; i++) {
    const context = slice(ctx, i);
    for (const t of context) if (t >= vocab.size) throw new Error(`${path}: token id ${t} is outside the checkpoint's vocabulary of ${vocab.size}`);
    out.push({
      id: ids[i], kind: kind[i], group: group[i], domain: domain[i], variant: variant[i], subject: subject[i],
      evidenceDomain: evidence[i], trueBad: trueBad[i], text: text[i], context, good: slice(good, i), bad: slice(bad, i),
      goodText: goodText[i], badText: badText[i],
    });
  }
  return out;
}
