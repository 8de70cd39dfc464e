/**
 * gpt-tokenizer's cl100k BPE, then a compact vocabulary: dense ids for the BPE tokens of a given
 * list of strings, after three special tokens. The tokenizer knows nothing of the world: the world
 * supplies its strings (src/world/lexicon-strings.ts, `worldVocabulary()`).
 */
import { decode as bpeDecode, encode as bpeEncode } from 'gpt-tokenizer/encoding/cl100k_base';
import { createHash } from 'node:crypto';

export const PAD = 0;
export const BOS = 1;
export const EOS = 2;
export const SPECIAL_TOKENS = ['<|pad|>', '<|bos|>', '<|eos|>'] as const;
const ENCODING = 'cl100k_base';

export interface VocabularyJson {
  format: 'persona-testbed-vocab/1';
  encoding: string;
  specials: string[];
  /** BPE id of dense id (specials.length + i). */
  bpe: number[];
  /** sha256 of the two lists, to detect a mismatch between data and checkpoint quickly. */
  hash: string;
}

export class Vocabulary {
  readonly size: number;
  readonly hash: string;
  private readonly denseOf = new Map<number, number>();
  private readonly cache = new Map<string, Uint16Array>();

  constructor(readonly bpe: readonly number[]) {
    bpe.forEach((id, i) => this.denseOf.set(id, SPECIAL_TOKENS.length + i));
    this.size = SPECIAL_TOKENS.length + bpe.length;
    this.hash = vocabHash(bpe);
  }

  /** The vocabulary of every BPE token the strings encode to (ids sorted, so the order of the strings does not matter). */
  static fromStrings(strings: Iterable<string>): Vocabulary {
    const ids = new Set<number>();
    for (const s of strings) for (const id of bpeEncode(s)) ids.add(id);
    return new Vocabulary([...ids].sort((a, b) => a - b));
  }

  static fromJson(json: unknown, source: string): Vocabulary {
    const v = json as Partial<VocabularyJson>;
    if (v?.format !== 'persona-testbed-vocab/1' || !Array.isArray(v.bpe) || v.encoding !== ENCODING) {
      throw new Error(`${source}: not a persona-testbed vocabulary (format persona-testbed-vocab/1, encoding ${ENCODING})`);
    }
    const vocab = new Vocabulary(v.bpe);
    if (v.hash !== vocab.hash) throw new Error(`${source}: vocabulary hash mismatch (file is corrupt or edited)`);
    return vocab;
  }

  toJson(): VocabularyJson {
    return { format: 'persona-testbed-vocab/1', encoding: ENCODING, specials: [...SPECIAL_TOKENS], bpe: [...this.bpe], hash: this.hash };
  }

  /**
   * Encode text to dense ids. Throws on a token outside the vocabulary: text the world cannot
   * produce has no trained embedding, and silently mapping it to something else would hide that.
   */
  encode(text: string): Uint16Array {
    const hit = this.cache.get(text);
    if (hit) return hit;
    const bpe = bpeEncode(text);
    const out = new Uint16Array(bpe.length);
    for (let i = 0; i < bpe.length; i++) {
      const dense = this.denseOf.get(bpe[i]);
      if (dense === undefined) {
        throw new Error(`token ${JSON.stringify(bpeDecode([bpe[i]]))} in ${JSON.stringify(text.slice(0, 60))} is not in the world's vocabulary; use only words the world uses`);
      }
      out[i] = dense;
    }
    // Segments repeat a lot (speaker tags, answers); a bounded cache makes data building fast.
    if (this.cache.size < 200_000) this.cache.set(text, out);
    return out;
  }

  /** True when every BPE token of `text` is in the vocabulary. */
  covers(text: string): boolean {
    return bpeEncode(text).every((id) => this.denseOf.has(id));
  }

  decode(ids: ArrayLike<number>, { specials = true } = {}): string {
    let text = '';
    let run: number[] = [];
    const flush = () => {
      if (run.length) text += bpeDecode(run);
      run = [];
    };
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (id < SPECIAL_TOKENS.length) {
        flush();
        if (specials) text += SPECIAL_TOKENS[id];
      } else {
        const bpe = this.bpe[id - SPECIAL_TOKENS.length];
        if (bpe === undefined) throw new Error(`token id ${id} is outside the vocabulary (size ${this.size})`);
        run.push(bpe);
      }
    }
    flush();
    return text;
  }
}

function vocabHash(bpe: readonly number[]): string {
  return createHash('sha256').update(`${ENCODING}|${SPECIAL_TOKENS.join(',')}|${bpe.join(',')}`).digest('hex').slice(0, 16);
}
