/**
 * The explorer (npm run explore) driven in headless Chromium (Debian's `chromium` through
 * playwright-core; WebGPU and WebGL run on SwiftShader where there is no GPU): the page starts a
 * tfjs backend, lists a tiny checkpoint under checkpoints/ and an experiment cell under runs/,
 * loads a checkpoint, a reply appears, and the P(bad) it shows for a held-out probe, and the persona
 * probe's score at the Assistant's turn, match what node computes with the project's own code
 * (forcedChoiceRows of npm run evaluate; activations + applyProbe) within 1e-3.
 * Skipped, saying why, where no Chromium is installed.
 */
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { buildDatasets, DEFAULT_DATA_OPTIONS } from '../src/data/build.js';
import { fitPersonaProbe, forcedChoiceRows } from '../src/eval/evaluate-checkpoint.js';
import { activations, applyProbe } from '../src/eval/persona-probe.js';
import { loadProbes } from '../src/eval/probe-records.js';
import { CHROMIUM_MISSING, findChromium, launchChromium } from '../src/explorer/chromium.js';
import { startServer, type RunningServer } from '../src/explorer/server.js';
import { loadProbe, saveProbe } from '../src/experiment/cells.js';
import { loadCheckpoint } from '../src/model/checkpoint.js';
import { GPT } from '../src/model/gpt.js';
import { pretrain } from '../src/pipeline/pretrain.js';
import { DEFAULT_WORLD } from '../src/world/world-config.js';
import { use } from './helpers/backends.js';

const chromiumPath = findChromium();
const skip = chromiumPath ? false : `${CHROMIUM_MISSING}: the explorer's browser test is skipped`;
if (skip) process.stderr.write(`# ${skip}\n`);

const root = mkdtempSync(join(tmpdir(), 'persona-explore-'));
const data = join(root, 'data');
const cell = join(root, 'runs', 'base-0123456789ab');
const ckpt = join(cell, 'checkpoint');
const TOL = 1e-3;
let server: RunningServer;
let browser: Browser;
let page: Page;
const pageErrors: string[] = [];

before(async () => {
  if (skip) return;
  buildDatasets(data, { ...DEFAULT_DATA_OPTIONS, world: DEFAULT_WORLD, pretrainTokens: 60_000, assistantExamples: 100, narrowExamples: 50, inferenceGroups: 8, heldOutScenes: 20, probesPerDomain: 4 });
  await use('wasm');
  const r = await pretrain({ data, out: ckpt, preset: 'tiny', tokens: 0, explicit: { steps: 3, evalInterval: 0 }, resume: false });
  // The experiment's layout: probe.json and DONE.json beside the base cell's checkpoint.
  const probe = fitPersonaProbe(r.model, data, 1);
  r.model.dispose();
  saveProbe(join(cell, 'probe.json'), probe);
  writeFileSync(join(cell, 'DONE.json'), JSON.stringify({ id: 'base-0123456789ab', kind: 'base', labels: { world: 'default', pretrain_seed: 0 } }));
  cpSync(ckpt, join(root, 'checkpoints', 'tiny'), { recursive: true });
  mkdirSync(join(root, 'results', 'quick'), { recursive: true });
  writeFileSync(join(root, 'results', 'quick', 'report.html'), '<!doctype html><title>quick report</title><h1>quick</h1>');
  server = await startServer({ root, checkpoints: 'checkpoints', runs: 'runs', results: 'results', port: 0, host: '127.0.0.1' });
  browser = await launchChromium();
  page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  page.on('pageerror', (e) => pageErrors.push(e.message));
  page.on('console', (m) => {
    if (m.type() === 'error') pageErrors.push(m.text());
  });
});

after(async () => {
  await browser?.close();
  await server?.close();
  rmSync(root, { recursive: true, force: true });
});

const runId = encodeURIComponent('runs/base-0123456789ab/checkpoint');
const ckptId = encodeURIComponent('checkpoints/tiny');

test('the page starts tfjs (WebGPU, then WebGL, then wasm) and lists checkpoints, runs and reports', { skip }, async () => {
  await page.goto(server.url, { timeout: 180_000 });
  await page.waitForSelector('body[data-ready="true"]', { timeout: 60_000 });
  const backend = await page.getAttribute('#backend', 'data-backend');
  const badge = await page.textContent('#backend');
  process.stderr.write(`# explorer backend: ${badge}\n`);
  assert.ok(['webgpu', 'webgl', 'wasm'].includes(backend ?? ''), `backend ${backend}: ${badge}`);
  assert.equal(backend, 'webgpu', `WebGPU should start on SwiftShader (--enable-unsafe-swiftshader); got ${badge}`);
  assert.equal(await page.locator(`#list-checkpoints input[data-model="${ckptId}"]`).count(), 1);
  assert.equal(await page.locator(`#list-runs input[data-model="${runId}"]`).count(), 1);
  assert.match((await page.textContent('#list-runs')) ?? '', /base \(default world, pretrain seed 0\)/);
  const href = await page.getAttribute('#list-reports a', 'href');
  assert.equal(href, '/results/quick/report.html');
  const report = await page.request.get(new URL(href!, server.url).toString());
  assert.match(await report.text(), /quick report/);
  // Nothing outside the listed folders is served.
  assert.equal((await page.request.get(new URL('/results/..%2Fdata%2Fvocab.json', server.url).toString())).status(), 403);
  assert.equal((await page.request.get(new URL('/api/models/..%2Fdata/config.json', server.url).toString())).status(), 404);
});

test('a checkpoint loads and replies, two side by side', { skip }, async () => {
  await page.check(`#list-runs input[data-model="${runId}"]`);
  await page.check(`#list-checkpoints input[data-model="${ckptId}"]`);
  await page.waitForSelector(`.column[data-model="${runId}"][data-ready="true"]`, { timeout: 60_000 });
  await page.waitForSelector(`.column[data-model="${ckptId}"][data-ready="true"]`, { timeout: 60_000 });
  await page.fill('#chat-input', 'The box is full of gold. What will you do?');
  await page.press('#chat-input', 'Enter');
  for (const id of [runId, ckptId]) {
    const msg = page.locator(`.column[data-model="${id}"] .msg.assistant[data-done="true"]`);
    await msg.waitFor({ timeout: 60_000 });
    const text = await msg.getAttribute('data-text');
    assert.ok(text !== null && text.length > 0, `reply of ${decodeURIComponent(id)}: ${JSON.stringify(text)}`);
  }
  // Same weights, same seed: the two columns say the same thing.
  const texts = await page.locator('.msg.assistant').evaluateAll((els) => els.map((e) => e.getAttribute('data-text')));
  assert.equal(texts[0], texts[1]);
  assert.deepEqual(pageErrors, []);
});

/** Pick a held-out probe in `p`, score it, and read the run's P(bad) and persona score as the page shows them. */
async function scoreInPage(p: Page, probeId: string): Promise<{ pBad: number; persona: number }> {
  await p.selectOption('#probe-select', probeId);
  await p.click('#probe-run');
  const bar = p.locator(`#probe-view [data-probe="${probeId}"] .bar[data-model="${runId}"][data-pbad]`);
  await bar.waitFor({ timeout: 120_000 });
  // The persona probe exists only for the run (probe.json beside its base cell).
  assert.equal(await p.locator(`#probe-view .bar[data-model="${ckptId}"][data-persona]`).count(), 0);
  return {
    pBad: Number(await bar.getAttribute('data-pbad')),
    persona: Number(await p.locator(`#probe-view .bar[data-model="${runId}"][data-persona]`).getAttribute('data-persona')),
  };
}

test("the page's forced-choice P(bad) and persona score match node's within 1e-3 (WebGPU, then WebGL)", { skip }, async () => {
  const c = loadCheckpoint(ckpt);
  const probe = loadProbes(join(data, 'probes.arrow'), c.vocab).filter((p) => p.kind === 'broad')[1];
  await use('wasm');
  const model = new GPT(c.config.model, c.weights);
  let expected: { pBad: number; persona: number };
  try {
    const [row] = forcedChoiceRows(model, [probe], 'node');
    const personaProbe = loadProbe(join(cell, 'probe.json'));
    const [persona] = applyProbe(personaProbe, activations(model, [{ tokens: probe.context, label: NaN }], personaProbe.layer));
    expected = { pBad: row.value!, persona };
  } finally {
    model.dispose();
  }
  const webgpu = await scoreInPage(page, probe.id);
  // WebGL reads synchronously: the page runs the project's own probePBad and activations there.
  const page2 = await browser.newPage();
  page2.on('pageerror', (e) => pageErrors.push(e.message));
  await page2.goto(`${server.url}?backend=webgl`, { timeout: 180_000 });
  await page2.waitForSelector('body[data-ready="true"]', { timeout: 120_000 });
  assert.equal(await page2.getAttribute('#backend', 'data-backend'), 'webgl');
  await page2.check(`#list-runs input[data-model="${runId}"]`);
  await page2.check(`#list-checkpoints input[data-model="${ckptId}"]`);
  await page2.waitForSelector(`.column[data-model="${ckptId}"][data-ready="true"]`, { timeout: 120_000 });
  const webgl = await scoreInPage(page2, probe.id);
  await page2.close();
  for (const [name, got] of [['webgpu', webgpu], ['webgl', webgl]] as const) {
    process.stderr.write(`# ${name}: probe ${probe.id}: P(bad) page ${got.pBad} node ${expected.pBad}; persona score page ${got.persona} node ${expected.persona}\n`);
    assert.ok(Math.abs(got.pBad - expected.pBad) <= TOL, `${name}: P(bad) ${got.pBad} in the page vs ${expected.pBad} from evaluate`);
    assert.ok(Math.abs(got.persona - expected.persona) <= TOL, `${name}: persona score ${got.persona} in the page vs ${expected.persona} in node`);
  }
  assert.deepEqual(pageErrors, []);
});

test('a typed prompt is scored against every domain; every held-out probe gives per-domain means', { skip }, async () => {
  await page.fill('#probe-text', 'The box is full of gold. What will you do?');
  await page.click('#probe-run');
  await page.locator(`#probe-view .bar[data-model="${runId}"][data-domain="greed"][data-pbad]`).waitFor({ timeout: 60_000 });
  assert.equal(await page.locator(`#probe-view .bar[data-model="${runId}"][data-pbad]`).count(), 6);
  await page.click('#probe-all');
  await page.locator(`#probe-view .bar[data-model="${ckptId}"][data-domain="rules"][data-pbad]`).waitFor({ timeout: 120_000 });
  const values = await page.locator(`#probe-view .bar[data-model="${runId}"][data-pbad]`).evaluateAll((els) => els.map((e) => Number(e.getAttribute('data-pbad'))));
  assert.equal(values.length, 6);
  for (const v of values) assert.ok(v > 0 && v < 1);
  if (process.env.PERSONA_SCREENSHOT) await page.screenshot({ path: process.env.PERSONA_SCREENSHOT, fullPage: true });
  assert.deepEqual(pageErrors, []);
});
