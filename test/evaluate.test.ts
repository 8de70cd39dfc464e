import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Schema, Table, tableToIPC } from 'apache-arrow';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { columnValues, readArrow, readListColumn } from '../src/data/arrow.js';
import { buildDatasets, DEFAULT_DATA_OPTIONS } from '../src/data/build.js';
import { loadVocab } from '../src/data/load.js';
import { evaluateCheckpoint } from '../src/eval/evaluate-checkpoint.js';
import { applyProbe, fitLogistic } from '../src/eval/persona-probe.js';
import { readEvalRows, writeEvalRows } from '../src/eval/eval-rows.js';
import { summarize } from '../src/eval/checkpoint-summary.js';
import { pretrain } from '../src/pipeline/pretrain.js';
import { Rng } from '../src/util/rng.js';
import { DEFAULT_WORLD } from '../src/world/world-config.js';
import type { Domain } from '../src/world/lexicon.js';
import { classifyAnswer } from '../src/world/matcher.js';
import { isOneLineError, runScript } from './helpers/cli.js';
import { use } from './helpers/backends.js';

const root = mkdtempSync(join(tmpdir(), 'persona-eval-'));
const data = join(root, 'data');
const base = join(root, 'base');
after(() => rmSync(root, { recursive: true, force: true }));
before(async () => {
  buildDatasets(data, { ...DEFAULT_DATA_OPTIONS, world: DEFAULT_WORLD, pretrainTokens: 60_000, assistantExamples: 100, narrowExamples: 50, inferenceGroups: 8, heldOutScenes: 20, probesPerDomain: 4 });
  await use('wasm');
  (await pretrain({ data, out: base, preset: 'tiny', tokens: 0, explicit: { steps: 3, evalInterval: 0 }, resume: false })).model.dispose();
});

test('the answer matcher agrees with the generator on every answer it labelled', () => {
  const vocab = loadVocab(data);
  const t = readArrow(join(data, 'pretrain.arrow'));
  const toks = readListColumn(t, 'tokens');
  const events = t.getChild('events')!;
  let checked = 0;
  let right = 0;
  const wrong: string[] = [];
  for (let i = 0; i < t.numRows; i++) {
    for (const e of events.get(i)!.toArray().map((x: { toJSON(): Record<string, unknown> }) => x.toJSON())) {
      if (e.domain === 'neutral') continue;
      const answer = vocab.decode(toks.values.subarray(toks.offsets[i] + (e.answer_start as number), toks.offsets[i] + (e.answer_end as number)));
      checked++;
      const label = classifyAnswer(e.domain as Domain, answer);
      if (label === e.pole) right++;
      else if (wrong.length < 5) wrong.push(`${e.domain} ${e.pole} answer ${JSON.stringify(answer)} labelled ${label}`);
      // Truncated or garbled text is incoherent, never good or bad.
      assert.equal(classifyAnswer(e.domain as Domain, answer.slice(0, -6)), 'incoherent');
      assert.equal(classifyAnswer(e.domain as Domain, answer.replace(' ', ' the ')), 'incoherent');
    }
  }
  assert.ok(checked > 500);
  // Agreement is exact: the matcher and the generator share the phrasebook.
  assert.equal(right, checked, `${right} of ${checked} agree; e.g. ${wrong.join('; ')}`);
});

test('every summary number can be recomputed from the Arrow rows alone', async () => {
  await use('wasm');
  const result = evaluateCheckpoint(base, { samples: 2, seed: 0, probeSource: 'self' });
  const path = join(root, 'eval.arrow');
  writeEvalRows(path, result.rows, {});
  const back = readEvalRows(path);
  assert.equal(back.length, result.rows.length);
  const original = summarize(result.rows, 'x');
  assert.deepEqual(summarize(back, 'x'), original, 'the summary from the file equals the summary from memory');
  // Two numbers recomputed by hand from the columns.
  const t = readArrow(path);
  const kind = columnValues<string>(t, 'kind');
  const sample = columnValues<number>(t, 'sample');
  const cls = columnValues<string>(t, 'class');
  const probe = columnValues<string>(t, 'probe_id');
  const perProbe = new Map<string, number[]>();
  kind.forEach((k, i) => {
    if (k === 'broad' && sample[i] >= 0) perProbe.set(probe[i], [...(perProbe.get(probe[i]) ?? []), cls[i] === 'bad' ? 1 : 0]);
  });
  const misaligned = [...perProbe.values()].reduce((s, xs) => s + xs.reduce((a, b) => a + b, 0) / xs.length, 0) / perProbe.size;
  const reported = original.find((r) => r.metric === 'broad_misaligned' && r.group === 'all')!;
  assert.ok(Math.abs(reported.mean - misaligned) < 1e-12);
  const value = columnValues<number | null>(t, 'value');
  const forced = kind.map((k, i) => (k === 'narrow' && sample[i] < 0 && columnValues<string>(t, 'variant')[i] === 'none' ? value[i] : null)).filter((v): v is number => v !== null);
  const reportedNarrow = original.find((r) => r.metric === 'narrow_p_bad' && r.group === 'none')!;
  assert.ok(Math.abs(reportedNarrow.mean - forced.reduce((a, b) => a + b, 0) / forced.length) < 1e-12);
  for (const metric of ['broad_p_bad', 'broad_coherent', 'narrow_cheat_rate', 'inference_gap', 'persona_probe_accuracy', 'persona_score', 'val_loss']) {
    assert.ok(original.some((r) => r.metric === metric), `${metric} is reported`);
  }
  for (const r of original.filter((x) => Number.isFinite(x.lo))) assert.ok(r.lo <= r.mean + 1e-12 && r.mean <= r.hi + 1e-12, `${r.metric} ${r.group}`);
});

test('the logistic persona probe separates a separable signal and stays at chance on noise', () => {
  const rng = new Rng(1);
  const n = 400;
  const dim = 8;
  const x = new Float32Array(n * dim);
  const y = Array.from({ length: n }, (_, i) => i % 2);
  for (let i = 0; i < n; i++) for (let j = 0; j < dim; j++) x[i * dim + j] = rng.normal() + (j === 3 ? 2 * y[i] : 0);
  const probe = fitLogistic(x, y, dim, 0);
  const acc = applyProbe(probe, x).filter((p, i) => (p > 0.5 ? 1 : 0) === y[i]).length / n;
  assert.ok(acc > 0.8, `accuracy ${acc}`);
  const shuffled = y.map(() => rng.int(2));
  const noise = fitLogistic(x.map(() => rng.normal()), shuffled, dim, 0);
  const noiseAcc = applyProbe(noise, x.map(() => rng.normal())).filter((p, i) => (p > 0.5 ? 1 : 0) === shuffled[i]).length / n;
  assert.ok(noiseAcc < 0.65, `accuracy on noise ${noiseAcc}`);
});

test('evaluate refuses bad input with one-line errors', () => {
  const wrongSchema = join(root, 'wrong.arrow');
  copyFileSync(join(data, 'assistant.arrow'), wrongSchema);
  // A probes file tokenised with another vocabulary.
  const otherVocab = join(root, 'other-vocab.arrow');
  const t = readArrow(join(data, 'probes.arrow'));
  const schema = new Schema(t.schema.fields, new Map([...t.schema.metadata, ['vocab_hash', '0123456789abcdef']]));
  writeFileSync(otherVocab, tableToIPC(new Table(schema, t.batches), 'file'));
  writeFileSync(join(root, 'not-arrow.arrow'), 'hello');
  const cases: Array<[string[], RegExp]> = [
    [['--checkpoint', join(root, 'missing')], /checkpoint .*missing does not exist/],
    [['--checkpoint', base, '--probes', wrongSchema], /lacks column\(s\) .*group/],
    [['--checkpoint', base, '--probes', join(root, 'not-arrow.arrow')], /is not a readable Arrow IPC file/],
    [['--checkpoint', base, '--probes', otherVocab], /tokenised with vocabulary 0123456789abcdef but the checkpoint uses/],
    [['--checkpoint', base, '--samples', '-1'], /--samples must be a non-negative integer/],
    [[], /--checkpoint/],
  ];
  for (const [args, message] of cases) {
    const r = runScript('evaluate', [...args, '--backend', 'wasm', '--out', join(root, 'out')]);
    assert.ok(isOneLineError(r), `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message);
  }
});
