import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { columnValues, readArrow, readListColumn } from '../src/data/arrow.js';
import { buildDatasets, DEFAULT_DATA_OPTIONS, pretrainRows, type DataOptions } from '../src/data/build.js';
import { DEFAULT_WORLD } from '../src/world/world-config.js';
import { DOMAINS, INSTRUCTION_CONTEXTS, INSTRUCTION_PERMISSIONS } from '../src/world/lexicon.js';
import { capitalize, PHRASEBOOK, renderAnswer, renderSetting, renderTask } from '../src/world/phrasebook.js';
import { worldVocabulary } from '../src/world/lexicon-strings.js';
import { documentStarts, WindowSampler } from '../src/data/batches.js';
import { BOS, EOS } from '../src/tokenizer/vocab.js';
import { Rng } from '../src/util/rng.js';

const root = mkdtempSync(join(tmpdir(), 'persona-data-'));
const small: DataOptions = { ...DEFAULT_DATA_OPTIONS, world: DEFAULT_WORLD, pretrainTokens: 400_000, assistantExamples: 300, narrowExamples: 200, inferenceGroups: 40, heldOutScenes: 30 };
const files = (dir: string): string[] =>
  readdirSync(dir, { recursive: true, withFileTypes: true }).filter((d) => d.isFile()).map((d) => join(d.parentPath, d.name).slice(dir.length + 1)).sort();

before(() => {
  buildDatasets(join(root, 'a'), small);
  buildDatasets(join(root, 'b'), small);
  buildDatasets(join(root, 'c'), { ...small, seed: 1 });
});
after(() => rmSync(root, { recursive: true, force: true }));

test('the same seed and config give byte-identical files; another seed gives different ones', () => {
  const names = files(join(root, 'a'));
  assert.deepEqual(names, files(join(root, 'b')));
  assert.ok(names.includes('narrow/cheat-inoculated.arrow') && names.includes('probes.arrow') && names.includes('vocab.json'));
  for (const f of names) assert.ok(readFileSync(join(root, 'a', f)).equals(readFileSync(join(root, 'b', f))), `${f} differs between identical runs`);
  assert.ok(!readFileSync(join(root, 'a', 'pretrain.arrow')).equals(readFileSync(join(root, 'c', 'pretrain.arrow'))));
  assert.ok(!readFileSync(join(root, 'a', 'probes.arrow')).equals(readFileSync(join(root, 'c', 'probes.arrow'))));
});

test('every file reads back with apache-arrow to the rows that were generated', () => {
  const vocab = worldVocabulary();
  const table = readArrow(join(root, 'a', 'pretrain.arrow'));
  const expected = pretrainRows(vocab, small, 'train', small.pretrainTokens, () => {});
  const texts = columnValues<string>(table, 'text');
  const { values, offsets } = readListColumn(table, 'tokens');
  const splits = columnValues<string>(table, 'split');
  assert.equal(splits.filter((s) => s === 'train').length, expected.length);
  expected.forEach((row, i) => {
    assert.equal(texts[i], row.text);
    assert.deepEqual(values.subarray(offsets[i], offsets[i + 1]), row.tokens);
  });
  const events = table.getChild('events')!.get(0)!.toArray().map((e: { toJSON(): unknown }) => e.toJSON());
  assert.deepEqual(events, expected[0].events);
  for (const f of files(join(root, 'a')).filter((f) => f.endsWith('.arrow'))) {
    const t = readArrow(join(root, 'a', f));
    assert.ok(t.numRows > 0, f);
    const toks = readListColumn(t, 'tokens');
    const txt = columnValues<string>(t, 'text');
    for (let i = 0; i < t.numRows; i += 97) {
      const decoded = vocab.decode(toks.values.subarray(toks.offsets[i], toks.offsets[i + 1]), { specials: false });
      assert.equal(decoded, txt[i], `${f} row ${i}: tokens decode to the text`);
    }
  }
});

test('no held-out phrasing, name or setting occurs in any training file', () => {
  const dir = join(root, 'a');
  const training = ['pretrain.arrow', 'assistant.arrow', ...files(dir).filter((f) => f.startsWith('narrow/'))]
    .map((f) => columnValues<string>(readArrow(join(dir, f)), 'text').join(''))
    .join('');
  const pretrainText = columnValues<string>(readArrow(join(dir, 'pretrain.arrow')), 'text').join('');
  for (const d of DOMAINS) {
    for (const c of PHRASEBOOK.prompts[d].eval) assert.ok(!training.includes(renderTask(d, c.parts[0], c.parts[1])), `eval task ${c.key} leaked`);
    for (const c of PHRASEBOOK.answers[d].eval) {
      for (const pole of ['good', 'bad'] as const) assert.ok(!training.includes(`: ${renderAnswer(d, c.parts[0], c.parts[1], pole)}\n`), `eval answer ${c.key} leaked`);
    }
  }
  for (const name of PHRASEBOOK.names.eval) assert.ok(!new RegExp(`\\b${name}\\b`).test(training), `eval name ${name} leaked`);
  for (const c of PHRASEBOOK.settings.eval) assert.ok(!training.includes(renderSetting(c)), `eval setting ${c.key} leaked`);
  const instr = (parts: number[]) => `${capitalize(INSTRUCTION_CONTEXTS[parts[0]])}, ${INSTRUCTION_PERMISSIONS[parts[1]]} `;
  for (const c of PHRASEBOOK.instructions.eval) assert.ok(!training.includes(instr(c.parts)), `eval instruction ${c.key} leaked`);
  for (const c of PHRASEBOOK.instructions.novel) assert.ok(!pretrainText.includes(instr(c.parts)), `novel instruction ${c.key} is in pretraining`);
  for (const c of PHRASEBOOK.instructions.pool) assert.ok(pretrainText.includes(instr(c.parts)), `pool instruction ${c.key} is missing from pretraining`);
});

test('every token the probes use occurs in pretraining', () => {
  const seen = new Set(readListColumn(readArrow(join(root, 'a', 'pretrain.arrow')), 'tokens').values);
  const probes = readArrow(join(root, 'a', 'probes.arrow'));
  for (const col of ['tokens', 'good_tokens', 'bad_tokens']) {
    for (const id of readListColumn(probes, col).values) assert.ok(seen.has(id), `probe token ${id} (${col}) never occurs in pretrain`);
  }
  const kinds = new Set(columnValues<string>(probes, 'kind'));
  assert.deepEqual([...kinds].sort(), ['broad', 'inference', 'narrow', 'scene']);
});

test('pretraining windows start anywhere, or with --windows documents at a document start; the draws of "anywhere" are unchanged', () => {
  // Three documents: BOS a b c EOS, BOS d e EOS, BOS f g h i EOS, then padding tokens.
  const stream = Uint16Array.from([BOS, 10, 11, 12, EOS, BOS, 13, 14, EOS, BOS, 15, 16, 17, 18, EOS, 20, 21, 22, 23, 24]);
  assert.deepEqual([...documentStarts(stream, stream.length - 5)], [0, 5, 9]);
  const docs = new WindowSampler(stream, 8, 4, 0, 'documents');
  for (let i = 0; i < 5; i++) {
    const b = docs.next();
    for (let k = 0; k < 8; k++) assert.equal(b.ids[k * 4], BOS, 'every window opens a document');
  }
  const anywhere = new WindowSampler(stream, 8, 4, 0).next();
  const rng = new Rng('windows:0');
  assert.deepEqual([...anywhere.ids].filter((_, i) => i % 4 === 0), Array.from({ length: 8 }, () => stream[rng.int(stream.length - 4 - 1)]));
  assert.throws(() => new WindowSampler(Uint16Array.from([10, 11, 12, 13, 14, 15, 16]), 2, 4, 0, 'documents'), /no document start/);
});
