/**
 * The GPU paths in headless Chromium (Debian's `chromium` through playwright-core; here WebGPU and
 * WebGL run on SwiftShader, Chromium's CPU implementation of Vulkan): one training step of the
 * project's GPT and trainer on tfjs's WebGPU and WebGL backends agrees with the PyTorch parity
 * fixture (test/fixtures/parity, see test/parity.test.ts), and `npm run bench -- --backend webgpu`
 * produces its row. Skipped, saying why, where no Chromium is installed.
 *
 * Tolerances, the same as test/parity.test.ts's for the node backends (measured worst cases on
 * SwiftShader are printed by the test):
 * - loss: |loss - ref| <= 1e-5 * |ref|
 * - gradients, per parameter tensor: |g - ref| <= 1e-4 * max|ref|
 * - parameters after one trainStep (own gradients, clipping, AdamW): |p - ref| <= 5e-7 + 1e-4 * |ref - p0|
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { runBench } from '../src/bench/bench.js';
import { concat, loadParityFixture } from '../src/bench/parity.js';
import { readBenchRows } from '../src/bench/bench-rows.js';
import { CHROMIUM_MISSING, findChromium, launchChromium } from '../src/explorer/chromium.js';
import type { ParityResult, ParitySpec } from '../src/explorer/protocol.js';
import { send, startPageServer, type RunningServer } from '../src/explorer/server.js';

const LOSS_RTOL = 1e-5;
const GRAD_TOL = 1e-4;
const STEP_ATOL = 5e-7;
const STEP_RTOL = 1e-4;

const skip = findChromium() ? false : `${CHROMIUM_MISSING}: the WebGPU/WebGL tests are skipped`;
if (skip) process.stderr.write(`# ${skip}\n`);

const fx = loadParityFixture();
const I = fx.inputs;
const names = I.parameters.map((p) => p.name);
const sizes = I.parameters.map((p) => p.shape.reduce((a, b) => a * b, 1));
let server: RunningServer;
let browser: Browser;
const out = mkdtempSync(join(tmpdir(), 'persona-webgpu-'));

before(async () => {
  if (skip) return;
  const inputs = concat([fx.weights, fx.m, fx.v, fx.perturbedWeights], names);
  server = await startPageServer([(_req, res, path) => path === '/parity/inputs.bin' && (send(res, 200, new Uint8Array(inputs.buffer), 'application/octet-stream'), true)]);
  browser = await launchChromium();
});

/** A fresh page per backend (WebGL shaders failed to compile on a page that had run WebGPU first). */
async function benchPage(): Promise<Page> {
  const page = await browser.newPage();
  await page.goto(`${server.url}bench.html`, { timeout: 180_000 });
  await page.waitForFunction('globalThis.personaBench !== undefined', undefined, { timeout: 60_000 });
  return page;
}

after(async () => {
  await browser?.close();
  await server?.close();
  rmSync(out, { recursive: true, force: true });
});

/** Worst |got - ref| / scale over the tensors of `ref`, with the tensor's name; throws past `tol`. */
function checkTensors(label: string, got: number[], ref: Map<string, Float32Array>, only: string[] = names): number {
  let worst = 0;
  let offset = 0;
  names.forEach((name, i) => {
    const r = ref.get(name);
    if (only.includes(name) && r) {
      let scale = 0;
      for (const x of r) scale = Math.max(scale, Math.abs(x));
      let d = 0;
      for (let j = 0; j < r.length; j++) d = Math.max(d, Math.abs(got[offset + j] - r[j]));
      assert.ok(d <= GRAD_TOL * scale, `${label} ${name}: max |diff| ${d.toExponential(2)} exceeds ${GRAD_TOL} x ${scale.toExponential(2)}`);
      worst = Math.max(worst, d / scale);
    }
    offset += sizes[i];
  });
  return worst;
}

for (const backend of ['webgpu', 'webgl'] as const) {
  test(`[${backend} in Chromium] loss, gradients and one trainer step match PyTorch's`, { skip }, async () => {
    const spec: ParitySpec = { config: I.config, batch: I.batch, optimizer: { ...I.optimizer } };
    const page = await benchPage();
    const r = await page.evaluate(([b, s]) => (globalThis as unknown as { personaBench: { parity(b: string, s: ParitySpec): Promise<ParityResult> } }).personaBench.parity(b, s), [backend, spec] as const);
    await page.close();
    assert.equal(r.trainStep, backend === 'webgpu' ? 'trainStepAsync' : 'trainStep');
    assert.equal(r.runtime.backend, backend, `${backend} did not start: ${r.runtime.skipped.join('; ')}`);
    const lossErr = Math.abs(r.loss - fx.reference.loss) / fx.reference.loss;
    const pLossErr = Math.abs(r.perturbedLoss - fx.reference.perturbed_loss) / fx.reference.perturbed_loss;
    assert.ok(lossErr <= LOSS_RTOL, `loss ${r.loss} vs PyTorch ${fx.reference.loss}`);
    assert.ok(pLossErr <= LOSS_RTOL, `perturbed loss ${r.perturbedLoss} vs PyTorch ${fx.reference.perturbed_loss}`);
    const g = checkTensors('gradient', r.grads, fx.grads);
    // The fixture's perturbed case lists every gradient but wte's.
    const gp = checkTensors('perturbed gradient', r.perturbedGrads, fx.perturbedGrads, I.perturbed.gradients);
    assert.ok(Math.abs(r.stepLoss - fx.reference.loss) <= LOSS_RTOL * fx.reference.loss, `trainStep loss ${r.stepLoss}`);
    assert.ok(Math.abs(r.gradNorm - fx.reference.grad_norm) <= 1e-4 * fx.reference.grad_norm, `gradient norm ${r.gradNorm} vs ${fx.reference.grad_norm}`);
    let worstStep = 0;
    let o = 0;
    names.forEach((n, i) => {
      const ref = fx.after.get(n)!;
      const p0 = fx.weights.get(n)!;
      for (let j = 0; j < ref.length; j++) {
        const d = Math.abs(r.after[o + j] - ref[j]);
        const tol = STEP_ATOL + STEP_RTOL * Math.abs(ref[j] - p0[j]);
        assert.ok(d <= tol, `${n}[${j}] after the step: ${r.after[o + j]} vs PyTorch ${ref[j]} (before ${p0[j]})`);
        worstStep = Math.max(worstStep, d);
      }
      o += sizes[i];
    });
    process.stderr.write(`# ${backend} (${r.runtime.device}, ${r.trainStep}): loss rel. error ${lossErr.toExponential(1)} (perturbed ${pLossErr.toExponential(1)}), gradients ${g.toExponential(1)} of scale (perturbed ${gp.toExponential(1)}), step max |diff| ${worstStep.toExponential(1)}\n`);
  });
}

test('npm run bench -- --backend webgpu: the trainer step in Chromium, one row like the other engines', { skip }, async () => {
  const lines: string[] = [];
  const { rows } = await runBench(
    { backend: 'webgpu', gpu: false, preset: 'tiny', batch: 4, steps: 2, repeats: 2, warmup: 1, reference: null, torchThreads: 1, out, data: null, seed: 0, profile: false },
    (l) => lines.push(l),
  );
  assert.equal(rows.length, 1);
  const r = rows[0];
  assert.equal(r.engine, 'tfjs');
  assert.equal(r.backend, 'webgpu (Chromium)');
  assert.ok(Number(r.tokens_per_s) > 0 && Number.isFinite(Number(r.loss)), JSON.stringify(r));
  assert.match(String(r.device), /swiftshader/i);
  assert.ok(lines.some((l) => /not GPU numbers/.test(l)), lines.join('\n'));
  assert.equal(readBenchRows(join(out, 'bench.arrow')).length, 1);
});
