/**
 * Dataset rows and their Arrow columns. Every row carries its text, token ids and labels, and
 * multi-event documents carry one labelled record per event with its answer's token span, so any
 * metric can be recomputed from the files alone.
 */
import { Bool, Field, Int32, List, Struct, Uint16, Uint8, Utf8, vectorFromArray, type Vector } from 'apache-arrow';
import type { Vocabulary } from '../tokenizer/vocab.js';
import { documentText, type WorldDocument } from '../world/documents.js';
import { encodeDocument } from './encode.js';
import { listVector } from './arrow.js';

export interface EventRow {
  character: string;
  role: string;
  ai: boolean;
  persona: string;
  domain: string;
  pole: string;
  modifier: string;
  instructed: boolean;
  /** Token span of the answer body in `tokens`. */
  answer_start: number;
  answer_end: number;
}

export interface DocRow {
  id: string;
  split: string;
  kind: string;
  text: string;
  tokens: Uint16Array;
  mask: Uint8Array;
  /** Persona of the Assistant in a chat; null for scenes (see events). */
  persona: string | null;
  /** Single-event rows (narrow sets) also carry their labels flat. */
  domain: string | null;
  pole: string | null;
  instructed: boolean | null;
  condition: string | null;
  events: EventRow[];
  extra: Record<string, string>;
}

export function docRow(vocab: Vocabulary, doc: WorldDocument, id: string, split: string, kind: string, extra: Record<string, string> = {}, condition: string | null = null): DocRow {
  const enc = encodeDocument(vocab, doc);
  const events = doc.events.map((e) => ({
    character: e.character,
    role: e.role,
    ai: e.ai,
    persona: e.persona,
    domain: e.domain,
    pole: e.pole,
    modifier: e.modifier,
    instructed: e.instructed,
    answer_start: enc.bodyStart[e.answerLine],
    answer_end: enc.bodyEnd[e.answerLine],
  }));
  const single = events.length === 1 ? events[0] : null;
  return {
    id,
    split,
    kind,
    text: documentText(doc),
    tokens: enc.tokens,
    mask: enc.assistantMask,
    persona: doc.kind === 'chat' ? (doc.characters.find((c) => c.name === 'Assistant')?.persona ?? null) : null,
    domain: single?.domain ?? null,
    pole: single?.pole ?? null,
    instructed: single?.instructed ?? null,
    condition,
    events,
    extra,
  };
}

const EVENT_TYPE = new Struct([
  new Field('character', new Utf8()),
  new Field('role', new Utf8()),
  new Field('ai', new Bool()),
  new Field('persona', new Utf8()),
  new Field('domain', new Utf8()),
  new Field('pole', new Utf8()),
  new Field('modifier', new Utf8()),
  new Field('instructed', new Bool()),
  new Field('answer_start', new Int32()),
  new Field('answer_end', new Int32()),
]);

/** Columns of a document file; `withMask` adds the fine-tuning loss mask. */
export function docColumns(rows: DocRow[], withMask: boolean): Record<string, Vector> {
  const str = (f: (r: DocRow) => string | null) => vectorFromArray(rows.map(f), new Utf8());
  const cols: Record<string, Vector> = {
    id: str((r) => r.id),
    split: str((r) => r.split),
    kind: str((r) => r.kind),
    text: str((r) => r.text),
    tokens: listVector(new Uint16(), rows.map((r) => r.tokens)),
  };
  if (withMask) cols.mask = listVector(new Uint8(), rows.map((r) => r.mask));
  cols.persona = str((r) => r.persona);
  cols.domain = str((r) => r.domain);
  cols.pole = str((r) => r.pole);
  cols.instructed = vectorFromArray(rows.map((r) => r.instructed), new Bool());
  cols.condition = str((r) => r.condition);
  cols.events = vectorFromArray(rows.map((r) => r.events), new List(new Field('item', EVENT_TYPE, false)));
  const extraKeys = [...new Set(rows.flatMap((r) => Object.keys(r.extra)))].sort();
  for (const key of extraKeys) cols[key] = str((r) => r.extra[key] ?? null);
  return cols;
}

