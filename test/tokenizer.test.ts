import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encode as bpeEncode } from 'gpt-tokenizer/encoding/cl100k_base';
import { Rng } from '../src/util/rng.js';
import { encodeDocument } from '../src/data/encode.js';
import { BOS, EOS, Vocabulary } from '../src/tokenizer/vocab.js';
import { DEFAULT_WORLD } from '../src/world/world-config.js';
import { documentText, generatePretrainDocument } from '../src/world/documents.js';
import { generateAssistantChat } from '../src/world/finetune-sets.js';
import { NAME_HEADS, NAME_TAILS } from '../src/world/lexicon.js';
import { PHRASEBOOK } from '../src/world/phrasebook.js';
import { worldVocabulary } from '../src/world/lexicon-strings.js';

const vocab = worldVocabulary();

test('the compact vocabulary is small and round-trips through JSON', () => {
  assert.ok(vocab.size <= 4096, `vocabulary has ${vocab.size} tokens`);
  const back = Vocabulary.fromJson(JSON.parse(JSON.stringify(vocab.toJson())), 'vocab.json');
  assert.equal(back.hash, vocab.hash);
  assert.deepEqual(back.bpe, vocab.bpe);
  const tampered = { ...vocab.toJson(), bpe: vocab.bpe.slice(1) };
  assert.throws(() => Vocabulary.fromJson(tampered, 'x.json'), /hash mismatch/);
  assert.throws(() => Vocabulary.fromJson({ format: 'other' }, 'x.json'), /not a persona-testbed vocabulary/);
});

test('encode and decode round-trip exactly, and segment-wise encoding equals whole-text encoding', () => {
  const ctx = { world: DEFAULT_WORLD, pool: 'train' as const, rng: new Rng(3) };
  for (let i = 0; i < 300; i++) {
    const doc = i % 5 === 0 ? generateAssistantChat(ctx.rng) : generatePretrainDocument(ctx);
    const text = documentText(doc);
    const ids = vocab.encode(text);
    assert.equal(vocab.decode(ids), text);
    const enc = encodeDocument(vocab, doc);
    assert.equal(enc.tokens[0], BOS);
    assert.equal(enc.tokens[enc.tokens.length - 1], EOS);
    const withoutSpecials = enc.tokens.filter((t) => t > EOS);
    assert.deepEqual([...withoutSpecials], [...ids], 'segments tokenise like the whole text');
    for (const e of doc.events) {
      const span = vocab.decode(enc.tokens.subarray(enc.bodyStart[e.answerLine], enc.bodyEnd[e.answerLine]));
      assert.equal(span, doc.lines[e.answerLine].body);
    }
    if (doc.kind === 'chat') {
      const masked = vocab.decode(enc.tokens.filter((_, j) => enc.assistantMask[j] === 1), { specials: true });
      const expected = doc.lines.filter((l) => l.prefix === 'Assistant:').map((l) => `${l.body}<|eos|>`).join('');
      assert.equal(masked, expected, 'the mask covers exactly the Assistant answers and their EOS');
    }
  }
});

test('text the world cannot produce is rejected with a clear error', () => {
  assert.throws(() => vocab.encode('Quantum chromodynamics'), /not in the world's vocabulary/);
});

test('names split into syllable tokens, so held-out names use only trained tokens', () => {
  for (const h of NAME_HEADS) {
    for (const t of NAME_TAILS) {
      for (const [pre, post] of [[' ', ''], ['', ':'], [' ', ':'], [' ', ','], [' ', '.\n']]) {
        assert.deepEqual(bpeEncode(pre + h + t + post), [...bpeEncode(pre + h), ...bpeEncode(t + post)], `${pre}${h}${t}${post}`);
      }
    }
  }
  const trainTokens = new Set<number>();
  for (const n of PHRASEBOOK.names.train) for (const form of [` ${n}`, `${n}:`, ` ${n}:`]) for (const id of bpeEncode(form)) trainTokens.add(id);
  for (const n of PHRASEBOOK.names.eval) for (const form of [` ${n}`, `${n}:`, ` ${n}:`]) for (const id of bpeEncode(form)) assert.ok(trainTokens.has(id), `${n}`);
});
