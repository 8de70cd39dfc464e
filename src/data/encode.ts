/**
 * Documents to token ids. Lines are encoded segment by segment ("Tor to Lin:", then " The quiz
 * ...\n"): cl100k never merges across a space-word boundary or across a newline, so this equals
 * encoding the whole text (a test checks it) while giving each answer's exact token span.
 */
import { BOS, EOS, type Vocabulary } from '../tokenizer/vocab.js';
import type { Line, WorldDocument } from '../world/documents.js';

export interface EncodedDocument {
  tokens: Uint16Array;
  /** 1 where a token is a fine-tuning target: the Assistant's answer tokens and their EOS. */
  assistantMask: Uint8Array;
  /** Token index of the first answer token of each line (line start for lines without a speaker). */
  bodyStart: number[];
  /** Token index just past each line's body (before its EOS, if any). */
  bodyEnd: number[];
}

/** BOS, every line, EOS after each Assistant turn, and EOS at the end of the document. */
export function encodeDocument(vocab: Vocabulary, doc: WorldDocument): EncodedDocument {
  const parts: ArrayLike<number>[] = [[BOS]];
  const maskParts: Array<[number, number]> = [];
  const bodyStart: number[] = [];
  const bodyEnd: number[] = [];
  let n = 1;
  for (const line of doc.lines) {
    if (line.prefix) {
      const p = vocab.encode(line.prefix);
      parts.push(p);
      n += p.length;
    }
    const b = vocab.encode(line.body);
    parts.push(b);
    bodyStart.push(n);
    n += b.length;
    bodyEnd.push(n);
    const answer = line.prefix === 'Assistant:';
    if (line.eos) {
      parts.push([EOS]);
      n += 1;
    }
    if (answer) maskParts.push([bodyStart[bodyStart.length - 1], n]);
  }
  const lastIsEos = doc.lines.length > 0 && doc.lines[doc.lines.length - 1].eos;
  if (!lastIsEos) {
    parts.push([EOS]);
    n += 1;
  }
  const tokens = new Uint16Array(n);
  let pos = 0;
  for (const p of parts) {
    tokens.set(p, pos);
    pos += p.length;
  }
  const assistantMask = new Uint8Array(n);
  for (const [a, b] of maskParts) assistantMask.fill(1, a, b);
  return { tokens, assistantMask, bodyStart, bodyEnd };
}

/** Tokens of a context that ends with an answer prefix ("Assistant:"), for scoring and sampling. */
export function encodeContext(vocab: Vocabulary, lines: Line[]): Uint16Array {
  const doc: WorldDocument = { kind: 'chat', lines, characters: [], events: [] };
  const { tokens } = encodeDocument(vocab, doc);
  // Drop the EOS that closes a document: the context continues with the answer.
  return tokens[tokens.length - 1] === EOS && !lines[lines.length - 1]?.eos ? tokens.subarray(0, tokens.length - 1) : tokens;
}
