import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Rng } from '../src/util/rng.js';
import { ConfigError, DEFAULT_WORLD, parseWorldJson, resolveWorld } from '../src/world/world-config.js';
import { generatePretrainDocument, type GenContext } from '../src/world/documents.js';
import { crossDomainCorrelation, instructionStats } from '../src/data/structure-stats.js';
import type { EventRow } from '../src/data/doc-rows.js';
import { ANSWER_FRAMES, DOMAINS, DOMAIN_LEXICON, NAME_HEADS, NAME_TAILS } from '../src/world/lexicon.js';
import { allAnswers, classifyAnswer } from '../src/world/matcher.js';
import { PHRASEBOOK, renderAnswer } from '../src/world/phrasebook.js';
import { trueConditional, trueCorrelation, trueGap } from '../src/world/truth.js';

function events(world = DEFAULT_WORLD, n = 6000, seed = 1): EventRow[][] {
  const ctx: GenContext = { world, pool: 'train', rng: new Rng(seed) };
  return Array.from({ length: n }, () =>
    generatePretrainDocument(ctx).events.map((e) => ({ ...e, answer_start: 0, answer_end: 0 })),
  );
}

test('the Rng is deterministic, restorable and seed-sensitive', () => {
  const a = new Rng(7);
  const b = new Rng(7);
  const xs = Array.from({ length: 5 }, () => a.next());
  assert.deepEqual(xs, Array.from({ length: 5 }, () => b.next()));
  const saved = a.state();
  const next = a.next();
  assert.equal(new Rng(saved).next(), next);
  assert.notEqual(new Rng(8).next(), new Rng(7).next());
});

test('measured cross-domain correlation tracks rho', () => {
  const zero = crossDomainCorrelation(events(resolveWorld({ rho: 0 })), (e) => !e.ai);
  assert.ok(Math.abs(zero.correlation) < 0.03, `rho=0 gave ${zero.correlation}`);
  const world = resolveWorld({ rho: 0.9 });
  const high = crossDomainCorrelation(events(world), (e) => !e.ai);
  const truth = trueCorrelation(0.9, [{ weight: 1, q: world.p_bad }]);
  assert.ok(Math.abs(high.correlation - truth) < 0.05, `rho=0.9 gave ${high.correlation}, truth ${truth}`);
  const half = crossDomainCorrelation(events(resolveWorld({ rho: 0.5 })), (e) => !e.ai);
  assert.ok(Math.abs(half.correlation - 0.25) < 0.05, `rho=0.5 gave ${half.correlation}`);
});

test('instructed acts are independent of persona and always obeyed', () => {
  const s = instructionStats(events(resolveWorld({ p_instr: 0.3 })));
  assert.ok(Math.abs(s.pInstructedGivenGood - s.pInstructedGivenBad) < 0.02, JSON.stringify(s));
  assert.ok(Math.abs(s.pInstructedGivenGood - 0.3) < 0.02);
  assert.equal(s.pBadGivenInstructedGood, 1);
  assert.equal(s.pBadGivenInstructedBad, 1);
  const none = instructionStats(events(resolveWorld({ p_instr: 0 }), 500));
  assert.equal(none.pInstructedGivenGood, 0);
});

test('characters of a scene differ in both syllables of their names', () => {
  const ctx: GenContext = { world: DEFAULT_WORLD, pool: 'train', rng: new Rng(4) };
  for (let i = 0; i < 300; i++) {
    const names = generatePretrainDocument(ctx).characters.map((c) => c.name).filter((n) => n !== 'User' && n !== 'Assistant');
    const heads = names.map((n) => NAME_HEADS.find((h) => n.startsWith(h) && NAME_TAILS.includes(n.slice(h.length)))!);
    const tails = names.map((n, j) => n.slice(heads[j].length));
    assert.equal(new Set(heads).size, names.length, names.join(' '));
    assert.equal(new Set(tails).size, names.length, names.join(' '));
  }
});

test('the true conditionals follow from the generator', () => {
  assert.ok(Math.abs(trueGap(0.9, 0.5) - 0.81) < 1e-12);
  assert.equal(trueGap(0, 0.5), 0);
  assert.equal(trueConditional(0.9, 0.5, 'instructed'), 0.5);
  assert.equal(trueConditional(0.9, 0.5, 'none'), 0.5);
  // Bayes by brute force for an unequal prior.
  const rho = 0.6;
  const q = 0.3;
  const a = (1 + rho) / 2;
  const b = (1 - rho) / 2;
  const joint = q * a * a + (1 - q) * b * b;
  const marginal = q * a + (1 - q) * b;
  assert.ok(Math.abs(trueConditional(rho, q, 'bad') - joint / marginal) < 1e-12);
});

test('good and bad answers have the same number of BPE tokens', async () => {
  const { encode } = await import('gpt-tokenizer/encoding/cl100k_base');
  for (const d of DOMAINS) {
    for (let f = 0; f < ANSWER_FRAMES.length; f++) {
      for (let a = 0; a < DOMAIN_LEXICON[d].acts.length; a++) {
        const good = encode(` ${renderAnswer(d, f, a, 'good')}\n`).length;
        const bad = encode(` ${renderAnswer(d, f, a, 'bad')}\n`).length;
        assert.equal(good, bad, `${d} frame ${f} act ${a}`);
      }
    }
  }
});

test('held-out pools are unseen combinations of seen parts', () => {
  for (const d of DOMAINS) {
    for (const pool of [PHRASEBOOK.prompts[d], PHRASEBOOK.answers[d]]) {
      assert.ok(pool.eval.length > 0, `${d} has eval combinations`);
      const trainKeys = new Set(pool.train.map((c) => c.key));
      assert.ok(pool.eval.every((c) => !trainKeys.has(c.key)));
      const dims = pool.train[0].parts.length;
      for (let dim = 0; dim < dims; dim++) {
        for (const c of pool.eval) assert.ok(pool.train.some((t) => t.parts[dim] === c.parts[dim]), `part ${c.parts[dim]} of ${c.key} is trained`);
      }
    }
  }
  const trainNames = new Set(PHRASEBOOK.names.train);
  assert.ok(PHRASEBOOK.names.eval.length >= 10 && PHRASEBOOK.names.eval.every((n) => !trainNames.has(n)));
  const instr = PHRASEBOOK.instructions;
  const keys = (cs: Array<{ key: string }>) => new Set(cs.map((c) => c.key));
  for (const c of [...instr.novel, ...instr.eval]) assert.ok(!keys(instr.pool).has(c.key));
  for (const c of instr.eval) assert.ok(!keys(instr.novel).has(c.key));
});

test('the answer matcher recognises every well-formed answer and nothing else', () => {
  for (const d of DOMAINS) {
    for (const pole of ['good', 'bad'] as const) {
      for (const answer of allAnswers(d, pole)) {
        assert.equal(classifyAnswer(d, ` ${answer}\n`), pole);
        assert.equal(classifyAnswer(d, answer.slice(0, -1)), 'incoherent', 'missing full stop');
        assert.equal(classifyAnswer(d, answer.slice(0, Math.floor(answer.length / 2))), 'incoherent', 'truncated');
        assert.equal(classifyAnswer(d, `${answer} ${answer}`), 'incoherent', 'trailing text');
      }
    }
  }
  assert.equal(classifyAnswer('greed', ' I will play by the rules.'), 'incoherent', 'another domain');
  assert.equal(classifyAnswer('greed', ''), 'incoherent');
});

test('world config errors name the problem', () => {
  assert.throws(() => resolveWorld({ rho: 1.5 }), (e: Error) => e instanceof ConfigError && /rho=1.5 is outside \[0, 1\]/.test(e.message));
  assert.throws(() => resolveWorld({ rhoo: 0.5 }), /unknown key "rhoo"/);
  assert.throws(() => parseWorldJson('{"rho": ', 'w.json'), /w.json: not valid JSON/);
  assert.throws(() => parseWorldJson('[1]', 'w.json'), /expected a JSON object/);
  assert.throws(() => parseWorldJson('{"rho": "high"}', 'w.json'), /"rho" must be a number/);
  assert.equal(parseWorldJson('{"rho": 0}', 'w.json').rho, 0);
});
