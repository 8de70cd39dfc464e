import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { columnValues, readArrow } from '../src/data/arrow.js';
import { buildGraph, lineageOf, shardNodes } from '../src/experiment/graph.js';
import { expandWorlds, loadSpec, validateSpec } from '../src/experiment/spec.js';
import { nativeBackendStatus } from '../src/backend/native/native-backend.js';
import { isOneLineError, ROOT, runScript } from './helpers/cli.js';
import { use } from './helpers/backends.js';
import { readEvalRows } from '../src/eval/eval-rows.js';
import { forcedChoiceRows } from '../src/eval/evaluate-checkpoint.js';
import { loadProbes } from '../src/eval/probe-records.js';
import { loadCheckpoint } from '../src/model/checkpoint.js';
import { GPT } from '../src/model/gpt.js';

const SPEC = join(ROOT, 'test/fixtures/smoke-experiment.json');
const root = mkdtempSync(join(tmpdir(), 'persona-exp-'));
after(() => rmSync(root, { recursive: true, force: true }));
const backend = nativeBackendStatus().available ? 'native' : 'wasm';
const run = (runs: string, out: string, extra: string[] = []) => runScript('experiment', ['--spec', SPEC, '--runs', runs, '--out', out, '--backend', backend, '--replicates', '200', ...extra]);

test('the graph: hash-keyed cells, lineage shards that cover every cell once, sweeps as worlds', () => {
  const spec = loadSpec(SPEC);
  const nodes = buildGraph(spec, '/r');
  assert.equal(nodes.length, 2 * (3 + 2 * 3));
  assert.deepEqual(buildGraph(spec, '/r').map((n) => n.id), nodes.map((n) => n.id), 'ids are stable');
  // Pinned: a change to a node's config (its fields, their names, its parent) makes new cells and orphans finished ones.
  assert.deepEqual(nodes.slice(0, 5).map((n) => n.id), ['data-96c7982ec10f', 'base-10d60d58f9df', 'assistant-8fcfe965fc7d', 'narrow-b6cc242087a9', 'evaluate-55d0b67eae96']);
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const evaluate = nodes.find((n) => n.kind === 'evaluate')!;
  const lineage = lineageOf(evaluate, byId);
  assert.deepEqual([lineage.data.id, lineage.base.id, lineage.assistant.id, lineage.narrow.id], nodes.slice(0, 4).map((n) => n.id), 'lineageOf names every ancestor');
  assert.equal(lineage.narrow.config.assistant, lineage.assistant.id);
  assert.throws(() => lineageOf(evaluate, new Map()), /not in the graph, expected a narrow node/);
  const changed = buildGraph({ ...spec, narrow: { ...spec.narrow, steps: 5, eval_steps: [5] } }, '/r');
  assert.deepEqual(changed.filter((n) => n.kind === 'base').map((n) => n.id), nodes.filter((n) => n.kind === 'base').map((n) => n.id), 'unchanged stages are reused');
  assert.notDeepEqual(changed.filter((n) => n.kind === 'narrow').map((n) => n.id), nodes.filter((n) => n.kind === 'narrow').map((n) => n.id));
  // A spec's pretraining batch: 16 when absent (the cells from before it keep their ids, also when 16 is written out); another makes new bases.
  const baseIds = (g: ReturnType<typeof buildGraph>) => g.filter((n) => n.kind === 'base').map((n) => n.id);
  assert.deepEqual(baseIds(buildGraph({ ...spec, pretrain: { ...spec.pretrain, batch: 16 } }, '/r')), baseIds(nodes));
  const batch8 = buildGraph({ ...spec, pretrain: { ...spec.pretrain, batch: 8 } }, '/r').filter((n) => n.kind === 'base');
  assert.ok(batch8.every((n) => n.kind === 'base' && n.config.batch === 8 && !baseIds(nodes).includes(n.id)));
  const shards = [0, 1].map((index) => shardNodes(nodes, { index, count: 2 }));
  assert.equal(shards[0].length + shards[1].length, nodes.length);
  for (const s of shards) for (const n of s) for (const d of n.deps) assert.ok(s.some((m) => m.id === d), 'a shard holds whole lineages');
  const swept = expandWorlds({ ...spec, sweeps: { rho: [0, 0.9, 0.5] } });
  assert.deepEqual(swept.map((w) => w.name), ['default', 'null', 'rho=0', 'rho=0.5'], 'rho=0.9 is the default world already');
});

test('npm run experiment runs the grid, reuses finished cells, and two shards merged equal one run', () => {
  const whole = run(join(root, 'runs-a'), join(root, 'out-a'), ['--stack']);
  assert.equal(whole.status, 0, whole.stderr);
  assert.match(whole.stdout, /default step 4: EM effect -?\d\.\d{3} \[/);
  assert.match(whole.stderr, /worker time by kind: data 2 cells \d+s, base 2 cells \d+s, .*evaluate 6 cells \d+s/);
  for (const f of ['report.md', 'report.html', 'results.arrow', 'cells.arrow', 'results.parquet', 'cells.parquet', 'dynamics.arrow', 'plots/broad-first.svg']) assert.ok(existsSync(join(root, 'out-a', f)), f);
  const report = readFileSync(join(root, 'out-a', 'report.md'), 'utf8');
  assert.match(report, /## The answer/);
  assert.match(readFileSync(join(root, 'out-a', 'report.html'), 'utf8'), /<svg/);

  // Sibling narrow cells trained as stacked runs (a lineage's three split over the workers), and
  // the same grid trained one by one (the default) gives the same results within float32 rounding
  // (amplified on log-odds scales; a run mixed up with its sibling would be off by far more).
  const narrowDone = buildGraph(loadSpec(SPEC), join(root, 'runs-a')).filter((n) => n.kind === 'narrow').map((n) => JSON.parse(readFileSync(join(n.dir, 'DONE.json'), 'utf8')) as { stacked?: number });
  assert.ok(narrowDone.some((d) => (d.stacked ?? 1) >= 2), 'some narrow cells trained stacked');
  const unstacked = run(join(root, 'runs-single'), join(root, 'out-single'));
  assert.equal(unstacked.status, 0, unstacked.stderr);
  const values = (dir: string) => {
    const t = readArrow(join(dir, 'results.arrow'));
    return { keys: ['world', 'step', 'metric', 'condition', 'group'].map((c) => columnValues<unknown>(t, c)), mean: columnValues<number>(t, 'mean') };
  };
  const [a, b] = [values(join(root, 'out-a')), values(join(root, 'out-single'))];
  assert.deepEqual(a.keys, b.keys);
  a.mean.forEach((m, i) => assert.ok(Math.abs(m - b.mean[i]) <= 1e-3 * (1 + Math.abs(b.mean[i])), `result ${i}: stacked ${m} vs one by one ${b.mean[i]}`));

  const again = run(join(root, 'runs-a'), join(root, 'out-a2'));
  assert.equal(again.status, 0, again.stderr);
  assert.match(again.stderr, /cells: 0 run, 18 reused/);

  const dry = runScript('experiment', ['--spec', SPEC, '--runs', join(root, 'runs-a'), '--dry-run']);
  assert.match(dry.stdout, /18 cells: 18 done, 0 partial, 0 pending/);

  for (const shard of ['0/2', '1/2']) {
    const r = run(join(root, 'runs-b'), join(root, 'out-b'), ['--shard', shard, '--stack']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /aggregate with: .*--merge/);
  }
  const merged = run(join(root, 'runs-b'), join(root, 'out-b'), ['--merge']);
  assert.equal(merged.status, 0, merged.stderr);
  const table = (dir: string) => {
    const t = readArrow(join(dir, 'results.arrow'));
    return ['world', 'step', 'metric', 'condition', 'group', 'mean', 'lo', 'hi'].map((c) => columnValues<unknown>(t, c));
  };
  assert.deepEqual(table(join(root, 'out-b')), table(join(root, 'out-a')), 'sharded + merged equals unsharded');
});

test('an evaluate cell reads the forced choices its narrow run scored at the last step, and they are what scoring the checkpoint gives', async () => {
  // runs-single: the grid trained one by one by the test above.
  const nodes = buildGraph(loadSpec(SPEC), join(root, 'runs-single'));
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const evaluates = nodes.filter((n) => n.kind === 'evaluate');
  assert.ok(evaluates.length > 0);
  await use(backend);
  for (const e of evaluates) {
    const narrow = byId.get((e.config as { narrow: string }).narrow)!;
    const log = readFileSync(join(e.dir, 'log.txt'), 'utf8');
    assert.match(log, /forced choice: \d+ probes \(\d+ scored, [1-9]\d* from the training run's last evaluation\)/);
    const rows = readEvalRows(join(e.dir, 'eval.arrow')).filter((r) => r.sample === -1 && (r.kind === 'broad' || r.kind === 'narrow'));
    const last = new Map(readEvalRows(join(narrow.dir, 'evals', 'step-000004.arrow')).filter((r) => r.sample === -1 && r.kind !== 'persona').map((r) => [r.probe_id, r.value]));
    assert.equal(rows.length, last.size);
    for (const r of rows) assert.equal(r.value, last.get(r.probe_id), r.probe_id);
    // The quick measurement logged at that step is the mean of the same rows (read, not scored again).
    const metrics = readArrow(join(narrow.dir, 'checkpoint', 'metrics.arrow'));
    const at = columnValues<number>(metrics, 'step').findIndex((x) => Number(x) === 4);
    const none = rows.filter((r) => r.kind === 'narrow' && r.variant === 'none');
    assert.ok(Math.abs(columnValues<number>(metrics, 'cheat_no_prompt')[at] - none.reduce((a, r) => a + r.value!, 0) / none.length) < 1e-9);
    // Scoring the checkpoint afresh gives the same numbers.
    const ckpt = loadCheckpoint(join(narrow.dir, 'checkpoint'));
    const model = new GPT(ckpt.config.model, ckpt.weights);
    const probes = loadProbes(join(ckpt.config.data, 'probes.arrow'), ckpt.vocab).filter((p) => p.kind === 'broad' || p.kind === 'narrow');
    const again = forcedChoiceRows(model, probes, 'again');
    model.dispose();
    const byProbe = new Map(rows.map((r) => [r.probe_id, r.value!]));
    for (const r of again) assert.ok(Math.abs(r.value! - byProbe.get(r.probe_id)!) < 1e-5, `${r.probe_id}: ${r.value} vs ${byProbe.get(r.probe_id)}`);
  }
});

test('a failed cell is reported with its log; the other lineage goes on; a rerun resumes only what is missing', () => {
  const runs = join(root, 'runs-a');
  const nodes = buildGraph(loadSpec(SPEC), runs);
  const base = nodes.find((n) => n.kind === 'base' && n.labels.world === 'null')!;
  const narrows = nodes.filter((n) => n.kind === 'narrow');
  // Unfinish every narrow run, and break the null world's lineage by removing its persona probe.
  for (const n of narrows) rmSync(join(n.dir, 'DONE.json'));
  rmSync(join(base.dir, 'probe.json'));
  const r = run(runs, join(root, 'out-c'));
  assert.equal(r.status, 1);
  assert.match(r.stderr, /cells: 3 run, 12 reused, 3 failed, 0 skipped/);
  assert.match(r.stderr, /failed narrow-\w+: .*probe\.json.* \(log: .*log\.txt\)/);
  const defaultNarrows = narrows.filter((n) => n.labels.world === 'default');
  for (const n of defaultNarrows) assert.ok(existsSync(join(n.dir, 'DONE.json')));
  assert.ok(readdirSync(join(defaultNarrows[0].dir, 'evals')).includes('step-000004.arrow'));
});

test('every world with rho > 0 gets its rho-0 twin, trained with the same seeds; --dry-run lists its cells', () => {
  const spec = loadSpec(SPEC);
  const worlds = expandWorlds({ ...spec, twins: true, sweeps: { p_ai_bad: [0.9] }, sweep_twins: true });
  assert.deepEqual(worlds.map((w) => [w.name, w.role, w.twin ?? null]), [
    ['default', 'world', 'default-rho0'], ['null', 'null', null], ['p_ai_bad=0.9', 'sweep', 'p_ai_bad=0.9-rho0'], ['default-rho0', 'twin', null], ['p_ai_bad=0.9-rho0', 'twin', null],
  ]);
  const twin = worlds.find((w) => w.name === 'default-rho0')!;
  assert.equal(twin.config.rho, 0);
  assert.equal(twin.config.p_instr, worlds[0].config.p_instr, 'the twin differs in rho only');
  // A rho=0 sweep world is the default world's twin: one world, not two.
  const shared = expandWorlds({ ...spec, twins: true, sweeps: { rho: [0] } });
  assert.deepEqual(shared.map((w) => w.name), ['default', 'null', 'rho=0']);
  assert.equal(shared[0].twin, 'rho=0');
  const file = join(root, 'twins.json');
  writeFileSync(file, JSON.stringify({ ...JSON.parse(readFileSync(SPEC, 'utf8')), twins: true }));
  const dry = runScript('experiment', ['--spec', file, '--runs', join(root, 'runs-twins'), '--dry-run']);
  assert.equal(dry.status, 0, dry.stderr);
  assert.match(dry.stdout, /base default-rho0 p0/);
  assert.match(dry.stdout, /narrow default-rho0 p0 cheat\+act-free f0/);
});

test('specs are validated: unknown keys, types, duplicate worlds, presets, report step', () => {
  const base = JSON.parse(readFileSync(SPEC, 'utf8'));
  const cases: Array<[string, Record<string, unknown>, RegExp]> = [
    ['unknown top-level key', { sweep: { rho: [0] } }, /unknown key "sweep"/],
    ['unknown nested key', { narrow: { ...base.narrow, learning_rate: 0.1 } }, /"narrow": unknown key "learning_rate"/],
    ['old key', { finetune_seed: 1 }, /unknown key "finetune_seed"/],
    ['string lr', { pretrain: { ...base.pretrain, lr: '0.003' } }, /"pretrain\.lr"/],
    ['unknown preset', { preset: 'huge' }, /"preset": must name a model preset/],
    ['duplicate world names', { worlds: [...base.worlds, { name: 'default', world: { rho: 0.5 } }] }, /two worlds are named "default"/],
    ['duplicate world settings', { worlds: [...base.worlds, { name: 'nul2', world: { p_instr: 0, rho: 0 } }] }, /worlds "null" and "nul2" have the same settings/],
    ['unknown world knob', { worlds: [{ name: 'default', world: { rhoo: 1 } }, base.worlds[1]] }, /unknown key "rhoo"/],
    ['null world with instructions', { worlds: [base.worlds[0], { name: 'null', world: { rho: 0 } }] }, /null world "null" must have rho 0 and p_instr 0/],
    ['report step not evaluated', { report_step: 3 }, /"report_step" \(3\) must be one of narrow\.eval_steps/],
    ['unknown family', { inoculation_families: ['secret'] }, /"inoculation_families\.0"/],
    ['repeated seeds', { pretrain_seeds: [0, 0] }, /"pretrain_seeds": seeds must not repeat/],
  ];
  for (const [what, change, message] of cases) {
    assert.throws(() => validateSpec({ ...base, ...change }, 'spec.json'), (err: Error) => message.test(err.message) && !err.message.includes('\n'), what);
  }
});

test('experiment refuses bad input with one-line errors', () => {
  const cases: Array<[string[], RegExp]> = [
    [['--spec', 'nonsense'], /unknown experiment "nonsense"/],
    [['--spec', SPEC, '--shard', '2/2'], /--shard must be "i\/n" with 0 <= i < n/],
    [['--spec', SPEC, '--workers', '0'], /--workers must be a positive integer/],
    [['--spec', join(root, 'missing.json')], /no such file/],
  ];
  for (const [args, message] of cases) {
    const r = runScript('experiment', [...args, '--runs', join(root, 'runs-x')]);
    assert.ok(isOneLineError(r), `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message);
  }
});
