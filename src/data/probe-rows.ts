/** Probe rows: a context, a good and a bad continuation, and the labels every metric needs. */
import { Float64, Int32, Uint16, Utf8, vectorFromArray, type Vector } from 'apache-arrow';
import type { Vocabulary } from '../tokenizer/vocab.js';
import type { Probe } from '../world/probes.js';
import { encodeContext } from './encode.js';
import { listVector } from './arrow.js';
import { docColumns, type DocRow } from './doc-rows.js';

export interface ProbeRow extends DocRow {
  group: number;
  variant: string;
  subject: string;
  evidence_domain: string;
  /** The generator's P(bad) for inference probes; null elsewhere. */
  true_bad: number | null;
  good: string;
  bad: string;
  good_tokens: Uint16Array;
  bad_tokens: Uint16Array;
}

export function probeRow(vocab: Vocabulary, p: Probe, id: string): ProbeRow {
  const tokens = encodeContext(vocab, p.context);
  return {
    id,
    split: 'eval',
    kind: p.kind,
    text: p.context.map((l) => l.prefix + l.body).join(''),
    tokens,
    mask: new Uint8Array(),
    persona: null,
    domain: p.domain,
    pole: null,
    instructed: p.variant === 'instructed' || null,
    condition: null,
    events: [],
    extra: {},
    group: p.group,
    variant: p.variant,
    subject: p.subject,
    evidence_domain: p.evidenceDomain,
    true_bad: Number.isNaN(p.trueBad) ? null : p.trueBad,
    good: p.good,
    bad: p.bad,
    good_tokens: vocab.encode(p.good),
    bad_tokens: vocab.encode(p.bad),
  };
}

export function probeColumns(rows: ProbeRow[]): Record<string, Vector> {
  const cols = docColumns(rows, false);
  const str = (f: (r: ProbeRow) => string) => vectorFromArray(rows.map(f), new Utf8());
  return {
    ...cols,
    group: vectorFromArray(rows.map((r) => r.group), new Int32()),
    variant: str((r) => r.variant),
    subject: str((r) => r.subject),
    evidence_domain: str((r) => r.evidence_domain),
    true_bad: vectorFromArray(rows.map((r) => r.true_bad), new Float64()),
    good: str((r) => r.good),
    bad: str((r) => r.bad),
    good_tokens: listVector(new Uint16(), rows.map((r) => r.good_tokens)),
    bad_tokens: listVector(new Uint16(), rows.map((r) => r.bad_tokens)),
  };
}
