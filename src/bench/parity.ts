/**
 * The PyTorch parity fixture (test/fixtures/parity/): the tiny model from the project's own
 * initialWeights, one fixed batch whose loss weights include zeros, and AdamW moments from a
 * mid-training step; PyTorch (reference_torch.py `parity`, in float64) gives the loss, every
 * gradient, and the parameters after one AdamW step with clipping active. The test checks our GPT
 * against those files without PyTorch.
 *
 * A second case at perturbed weights (init + 0.1 N(0,1)) checks the loss and gradients where the
 * model is far from linear (at init, GELU's tanh form and the erf form differ by only ~3e-5 of a
 * gradient's scale; here by ~5e-4, so a wrong GELU is caught).
 *
 * A third case is a trajectory in the manner of llm.c's test_gpt2: 12 optimizer steps from the
 * initial weights and fresh moments (2 micro-batches each, warmup then cosine learning rate,
 * clipping), every step's loss and gradient norm and the final parameters from PyTorch in float64
 * (trajectory.json holds the inputs, batches included; trajectory-reference.json the losses and
 * norms; trajectory.bin the final parameters).
 *
 * Committed: inputs.json (config, batch, optimizer settings, hashes of the regenerated tensors),
 * reference.json (losses, gradient norm), reference.bin (float32: gradients, then parameters after
 * the step), perturbed.bin (float32: gradients at the perturbed weights, all but wte). The weights,
 * moments and perturbed weights are not committed: they are regenerated from their seeds and
 * checked against the hashes in inputs.json.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadModelPreset, type ModelConfig } from '../model/model-config.js';
import { initialWeights, parameterShapes } from '../model/gpt.js';
import { PRETRAIN_DEFAULTS } from '../pipeline/stage-defaults.js';
import { adamOptions } from '../train/training-session.js';
import { Rng } from '../util/rng.js';
import { learningRate } from '../train/optimizer.js';
import { findTorch, runTorchParity, runTorchTrajectory } from './torch.js';
import { worldVocabulary } from '../world/lexicon-strings.js';

export const PARITY_DIR = fileURLToPath(new URL('../../test/fixtures/parity/', import.meta.url));
export const PARITY_REGENERATE = 'npm run bench -- --write-parity-fixture';

export interface ParityBatch {
  batch: number;
  T: number;
  ids: number[];
  targets: number[];
  weights: number[];
}

export interface ParityOptimizer {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  gradClip: number;
  /** AdamW steps already taken: the fixture's step is step priorSteps + 1, from the stored moments. */
  priorSteps: number;
}

export interface ParityInputs {
  format: 'persona-parity-1';
  description: string;
  config: ModelConfig;
  /** initialWeights(config, initSeed) */
  initSeed: number;
  /** Rng seed of the moments (see parityMoments). */
  momentsSeed: string;
  batch: ParityBatch;
  optimizer: ParityOptimizer;
  parameters: Array<{ name: string; shape: number[] }>;
  /**
   * Second case: the same weights plus scale * N(0,1) (Rng(seed)), far from init, where GELU's
   * curvature and non-uniform attention show; loss and the gradients listed (all but wte, to keep
   * the files small: wte is checked in the first case).
   */
  perturbed: { seed: string; scale: number; gradients: string[] };
  /** sha256 of the float32 bytes of the weights, of m then v, and of the perturbed weights, in parameter order. */
  hashes: { weights: string; moments: string; perturbed: string };
}

export interface ParityReference {
  loss: number;
  perturbed_loss: number;
  grad_norm: number;
  clip_scale: number;
  torch: string;
  computed_in: string;
}

export interface ParityFixture {
  inputs: ParityInputs;
  reference: ParityReference;
  weights: Map<string, Float32Array>;
  m: Map<string, Float32Array>;
  v: Map<string, Float32Array>;
  grads: Map<string, Float32Array>;
  after: Map<string, Float32Array>;
  perturbedWeights: Map<string, Float32Array>;
  /** PyTorch's gradients at the perturbed weights (inputs.perturbed.gradients only). */
  perturbedGrads: Map<string, Float32Array>;
}

const INIT_SEED = 7;
/** AdamW steps taken before the one the fixture checks (so bias correction is not trivial). */
const PRIOR_STEPS = 9;
const MOMENTS_SEED = 'parity-moments';
const PERTURB_SEED = 'parity-perturb';
const PERTURB_SCALE = 0.1;

/** weights + scale * N(0, 1), drawn by Rng(seed) in parameter order. */
export function perturbWeights(weights: Map<string, Float32Array>, cfg: ModelConfig, seed = PERTURB_SEED, scale = PERTURB_SCALE): Map<string, Float32Array> {
  const rng = new Rng(seed);
  const out = new Map<string, Float32Array>();
  for (const [name] of parameterShapes(cfg)) {
    const w = weights.get(name)!.slice();
    for (let i = 0; i < w.length; i++) w[i] += scale * rng.normal();
    out.set(name, w);
  }
  return out;
}

/**
 * Moments of a run part-way through: m ~ 1e-4 N(0,1), v ~ 1e-8 (0.25 + U(0,1)). Their scale is
 * that of the clipped gradients' (gradient norm ~1 over ~60k parameters, clipped to 0.1), so the
 * new gradient, the clip scale, both bias corrections and eps all move the result.
 */
export function parityMoments(cfg: ModelConfig, seed = MOMENTS_SEED): { m: Map<string, Float32Array>; v: Map<string, Float32Array> } {
  const rng = new Rng(seed);
  const m = new Map<string, Float32Array>();
  const v = new Map<string, Float32Array>();
  for (const [name, shape] of parameterShapes(cfg)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const mv = new Float32Array(n);
    const vv = new Float32Array(n);
    for (let i = 0; i < n; i++) mv[i] = 1e-4 * rng.normal();
    for (let i = 0; i < n; i++) vv[i] = 1e-8 * (0.25 + rng.next());
    m.set(name, mv);
    v.set(name, vv);
  }
  return { m, v };
}

/** One batch of 3 x 24 (shorter than the context of 32), ids over the whole vocabulary, some loss weights 0. */
export function parityBatch(cfg: ModelConfig): ParityBatch {
  const rng = new Rng('parity-batch');
  const batch = 3;
  const T = Math.min(24, cfg.block_size);
  const n = batch * T;
  const ids = Array.from({ length: n }, () => rng.int(cfg.vocab_size));
  const targets = Array.from({ length: n }, () => rng.int(cfg.vocab_size));
  // Row 0: no loss on its first 5 positions (a prompt); row 1: all counted; row 2: only its first half.
  const weights = Array.from({ length: n }, (_, i) => {
    const b = Math.floor(i / T);
    const t = i % T;
    return (b === 0 && t < 5) || (b === 2 && t >= T / 2) ? 0 : 1;
  });
  return { batch, T, ids, targets, weights };
}

/** The named arrays of each map, in order, end to end (the layout of the fixture's binary files). */
export function concat(maps: Array<Map<string, Float32Array>>, names: string[]): Float32Array {
  const parts = maps.flatMap((mp) => names.map((n) => mp.get(n)!));
  const out = new Float32Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function sha256(a: Float32Array): string {
  return createHash('sha256').update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength)).digest('hex');
}

/** The fixture's inputs, regenerated (deterministic). */
export function parityInputs(): { inputs: ParityInputs; weights: Map<string, Float32Array>; m: Map<string, Float32Array>; v: Map<string, Float32Array>; perturbed: Map<string, Float32Array> } {
  const config: ModelConfig = { ...loadModelPreset('tiny'), vocab_size: worldVocabulary().size, dropout: 0 };
  const weights = initialWeights(config, INIT_SEED);
  const { m, v } = parityMoments(config);
  const perturbed = perturbWeights(weights, config);
  const names = parameterShapes(config).map(([n]) => n);
  const inputs: ParityInputs = {
    format: 'persona-parity-1',
    description: `tiny GPT, initialWeights(config, ${INIT_SEED}); PyTorch float64 loss, gradients and one AdamW step (step ${PRIOR_STEPS + 1}, clipping active). Regenerate: ${PARITY_REGENERATE}`,
    config,
    initSeed: INIT_SEED,
    momentsSeed: MOMENTS_SEED,
    batch: parityBatch(config),
    // gradClip below the gradient norm (~1 at init), so clipping is active.
    optimizer: { lr: PRETRAIN_DEFAULTS.lr, ...adamOptions(PRETRAIN_DEFAULTS), gradClip: 0.1, priorSteps: PRIOR_STEPS },
    parameters: parameterShapes(config).map(([name, shape]) => ({ name, shape })),
    perturbed: { seed: PERTURB_SEED, scale: PERTURB_SCALE, gradients: names.filter((n) => n !== 'wte') },
    hashes: { weights: sha256(concat([weights], names)), moments: sha256(concat([m, v], names)), perturbed: sha256(concat([perturbed], names)) },
  };
  return { inputs, weights, m, v, perturbed };
}

/**
 * Write the fixture with PyTorch: regenerates the inputs, runs reference_torch.py `parity`, checks
 * that clipping was active. Returns the reference's loss and gradient norm.
 */
export function writeParityFixture(dir = PARITY_DIR): ParityReference {
  const { inputs, weights, m, v, perturbed } = parityInputs();
  const torch = findTorch(1);
  const names = inputs.parameters.map((p) => p.name);
  const tmp = mkdtempSync(join(tmpdir(), 'persona-parity-'));
  try {
    writeFileSync(join(tmp, 'inputs.json'), `${JSON.stringify(inputs, null, 1)}\n`);
    const init = concat([weights, m, v, perturbed], names);
    writeFileSync(join(tmp, 'init.bin'), new Uint8Array(init.buffer));
    mkdirSync(dir, { recursive: true });
    runTorchParity(torch.python, tmp, dir);
    writeFileSync(join(dir, 'inputs.json'), compactJson(inputs));
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  writeTrajectory(torch.python, dir);
  const reference = JSON.parse(readFileSync(join(dir, 'reference.json'), 'utf8')) as ParityReference;
  if (!(reference.grad_norm > inputs.optimizer.gradClip)) {
    throw new Error(`the gradient norm ${reference.grad_norm} does not exceed the clip ${inputs.optimizer.gradClip}: clipping would not be tested`);
  }
  return reference;
}

// ---------------------------------------------------------------- trajectory

export interface TrajectoryInputs {
  format: 'persona-trajectory-1';
  description: string;
  config: ModelConfig;
  /** initialWeights(config, initSeed); fresh (zero) AdamW moments. */
  initSeed: number;
  parameters: Array<{ name: string; shape: number[] }>;
  optimizer: Omit<ParityOptimizer, 'priorSteps'>;
  gradAccum: number;
  /** The learning rate of each step (its length is the number of steps). */
  lrs: number[];
  /** steps x gradAccum micro-batches, in order. */
  batches: ParityBatch[];
  /** sha256 of the initial weights' float32 bytes in parameter order. */
  weightsHash: string;
}

export interface TrajectoryReference {
  losses: number[];
  grad_norms: number[];
  torch: string;
  computed_in: string;
}

export interface TrajectoryFixture {
  inputs: TrajectoryInputs;
  reference: TrajectoryReference;
  weights: Map<string, Float32Array>;
  /** PyTorch's parameters after the last step. */
  final: Map<string, Float32Array>;
}

const TRAJECTORY_STEPS = 12;
const TRAJECTORY_ACCUM = 2;
const TRAJECTORY_SEED = 'parity-trajectory';

/** The trajectory's inputs (deterministic): the parity model, 12 steps of 2 micro-batches of 2 x 24 tokens. */
export function trajectoryInputs(): { inputs: TrajectoryInputs; weights: Map<string, Float32Array> } {
  const config: ModelConfig = { ...loadModelPreset('tiny'), vocab_size: worldVocabulary().size, dropout: 0 };
  const weights = initialWeights(config, INIT_SEED);
  const names = parameterShapes(config).map(([n]) => n);
  const rng = new Rng(TRAJECTORY_SEED);
  const T = Math.min(24, config.block_size);
  const batches: ParityBatch[] = Array.from({ length: TRAJECTORY_STEPS * TRAJECTORY_ACCUM }, (_, k) => {
    const batch = 2;
    const n = batch * T;
    // A small vocabulary slice, so the model has something to learn in 12 steps; every third
    // micro-batch masks the first 6 positions of its rows (a prompt).
    const ids = Array.from({ length: n }, () => 3 + rng.int(40));
    const targets = ids.map((id, i) => (i % T === T - 1 ? 3 + rng.int(40) : ids[i + 1]));
    const weightsRow = Array.from({ length: n }, (_, i) => (k % 3 === 0 && i % T < 6 ? 0 : 1));
    return { batch, T, ids, targets, weights: weightsRow };
  });
  const schedule = { lr: 1e-2, minLr: 1e-3, warmup: 3, steps: TRAJECTORY_STEPS };
  const inputs: TrajectoryInputs = {
    format: 'persona-trajectory-1',
    description: `tiny GPT from initialWeights(config, ${INIT_SEED}), ${TRAJECTORY_STEPS} AdamW steps of ${TRAJECTORY_ACCUM} micro-batches (warmup then cosine lr, clip 1); PyTorch float64 losses, gradient norms and final parameters. Regenerate: ${PARITY_REGENERATE}`,
    config,
    initSeed: INIT_SEED,
    parameters: parameterShapes(config).map(([name, shape]) => ({ name, shape })),
    optimizer: { lr: schedule.lr, ...adamOptions(PRETRAIN_DEFAULTS), gradClip: 1 },
    gradAccum: TRAJECTORY_ACCUM,
    lrs: Array.from({ length: TRAJECTORY_STEPS }, (_, step) => learningRate(step, schedule)),
    batches,
    weightsHash: sha256(concat([weights], names)),
  };
  return { inputs, weights };
}

/** Write the trajectory (trajectory.json, trajectory-reference.json, trajectory.bin) with PyTorch. */
export function writeTrajectory(python: string, dir = PARITY_DIR): void {
  const { inputs, weights } = trajectoryInputs();
  const names = inputs.parameters.map((p) => p.name);
  const tmp = mkdtempSync(join(tmpdir(), 'persona-trajectory-'));
  try {
    writeFileSync(join(tmp, 'trajectory.json'), compactJson(inputs));
    writeFileSync(join(tmp, 'init.bin'), new Uint8Array(concat([weights], names).buffer));
    runTorchTrajectory(python, tmp, dir);
    writeFileSync(join(dir, 'trajectory.json'), compactJson(inputs));
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** Load the committed trajectory and check that its weights are still initialWeights()'s. */
export function loadTrajectoryFixture(dir = PARITY_DIR): TrajectoryFixture {
  const read = (f: string) => {
    try {
      return readFileSync(join(dir, f));
    } catch {
      throw new Error(`${join(dir, f)} is missing: regenerate the fixture with ${PARITY_REGENERATE}`);
    }
  };
  const inputs = JSON.parse(read('trajectory.json').toString('utf8')) as TrajectoryInputs;
  const reference = JSON.parse(read('trajectory-reference.json').toString('utf8')) as TrajectoryReference;
  const cfg = inputs.config;
  const shapes = parameterShapes(cfg);
  if (JSON.stringify(shapes.map(([n, s]) => ({ name: n, shape: s }))) !== JSON.stringify(inputs.parameters)) {
    throw new Error(`the trajectory's parameters differ from parameterShapes(): regenerate it with ${PARITY_REGENERATE}`);
  }
  const names = shapes.map(([n]) => n);
  const weights = initialWeights(cfg, inputs.initSeed);
  if (sha256(concat([weights], names)) !== inputs.weightsHash) {
    throw new Error(`initialWeights() no longer gives the trajectory's weights: regenerate with ${PARITY_REGENERATE}`);
  }
  const bin = read('trajectory.bin');
  const all = new Float32Array(bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.byteLength));
  const final = new Map<string, Float32Array>();
  let o = 0;
  for (const [name, shape] of shapes) {
    const n = shape.reduce((a, b) => a * b, 1);
    final.set(name, all.slice(o, o + n));
    o += n;
  }
  if (o !== all.length) throw new Error(`trajectory.bin has ${all.length} values, expected ${o}`);
  if (reference.losses.length !== inputs.lrs.length) throw new Error('trajectory-reference.json has another number of steps than trajectory.json');
  return { inputs, reference, weights, final };
}

/** JSON with one line per key, arrays of numbers kept on one line (small diffs, readable). */
export function compactJson(x: unknown): string {
  return `${JSON.stringify(x, (_, v) => v, 1).replace(/\[\s+([-\d.,\s]+?)\s+\]/g, (_, body: string) => `[${body.replace(/\s+/g, '')}]`)}\n`;
}

/** Load the committed fixture, regenerate its inputs, and check they are the ones PyTorch saw. */
export function loadParityFixture(dir = PARITY_DIR): ParityFixture {
  const read = (f: string) => {
    try {
      return readFileSync(join(dir, f));
    } catch {
      throw new Error(`${join(dir, f)} is missing: regenerate the fixture with ${PARITY_REGENERATE}`);
    }
  };
  const inputs = JSON.parse(read('inputs.json').toString('utf8')) as ParityInputs;
  const reference = JSON.parse(read('reference.json').toString('utf8')) as ParityReference;
  const bin = read('reference.bin');
  const cfg = inputs.config;
  const names = inputs.parameters.map((p) => p.name);
  const expected = parameterShapes(cfg);
  if (JSON.stringify(expected.map(([n, s]) => ({ name: n, shape: s }))) !== JSON.stringify(inputs.parameters)) {
    throw new Error(`the fixture's parameters differ from parameterShapes(): regenerate it with ${PARITY_REGENERATE}`);
  }
  const weights = initialWeights(cfg, inputs.initSeed);
  const { m, v } = parityMoments(cfg, inputs.momentsSeed);
  if (sha256(concat([weights], names)) !== inputs.hashes.weights) {
    throw new Error(`initialWeights() no longer gives the fixture's weights (the init or the Rng changed): regenerate with ${PARITY_REGENERATE}`);
  }
  if (sha256(concat([m, v], names)) !== inputs.hashes.moments) {
    throw new Error(`parityMoments() no longer gives the fixture's moments: regenerate with ${PARITY_REGENERATE}`);
  }
  const perturbedWeights = perturbWeights(weights, cfg, inputs.perturbed.seed, inputs.perturbed.scale);
  if (sha256(concat([perturbedWeights], names)) !== inputs.hashes.perturbed) {
    throw new Error(`perturbWeights() no longer gives the fixture's perturbed weights: regenerate with ${PARITY_REGENERATE}`);
  }
  const sizes = expected.map(([, s]) => s.reduce((a, b) => a * b, 1));
  const total = sizes.reduce((a, b) => a + b, 0);
  if (bin.byteLength !== 2 * total * 4) throw new Error(`reference.bin has ${bin.byteLength} bytes, expected ${2 * total * 4}`);
  const all = new Float32Array(bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.byteLength));
  const grads = new Map<string, Float32Array>();
  const after = new Map<string, Float32Array>();
  let o = 0;
  for (const target of [grads, after]) {
    names.forEach((n, i) => {
      target.set(n, all.slice(o, o + sizes[i]));
      o += sizes[i];
    });
  }
  const pbin = read('perturbed.bin');
  const pall = new Float32Array(pbin.buffer.slice(pbin.byteOffset, pbin.byteOffset + pbin.byteLength));
  const perturbedGrads = new Map<string, Float32Array>();
  o = 0;
  for (const n of inputs.perturbed.gradients) {
    const size = sizes[names.indexOf(n)];
    perturbedGrads.set(n, pall.slice(o, o + size));
    o += size;
  }
  if (o !== pall.length) throw new Error(`perturbed.bin has ${pall.length} values, expected ${o}`);
  return { inputs, reference, weights, m, v, grads, after, perturbedWeights, perturbedGrads };
}
