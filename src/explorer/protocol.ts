/** What the explorer's and the browser benchmark's node side and pages exchange (JSON), shared by both sides. */
import type { ModelConfig } from '../model/model-config.js';
import type { AdamWOptions } from '../train/optimizer.js';

export interface ModelEntry {
  /** Opaque id used in URLs (the folder relative to the server's root, URI-encoded). */
  id: string;
  /** The checkpoint folder as shown to the user. */
  path: string;
  /** "checkpoints" or "runs". */
  source: 'checkpoints' | 'runs';
  /** A readable name: the folder under checkpoints/, or the run's kind and labels. */
  label: string;
  stage: string;
  /** "4 x 128, 0.93M parameters". */
  size: string;
  /** An experiment cell without DONE.json (still running or interrupted). */
  unfinished: boolean;
  /** The lineage's persona probe (probe.json of its base cell) exists. */
  personaProbe: boolean;
  /** probes.arrow of the checkpoint's data folder exists. */
  probes: boolean;
}

export interface ReportEntry {
  name: string;
  href: string;
}

export interface IndexJson {
  models: ModelEntry[];
  reports: ReportEntry[];
  roots: { checkpoints: string; runs: string; results: string };
}

export interface ProbeJson {
  id: string;
  kind: string;
  group: number;
  domain: string;
  variant: string;
  subject: string;
  text: string;
  context: number[];
  good: number[];
  bad: number[];
  goodText: string;
  badText: string;
}

export interface ProbesJson {
  source: string;
  probes: ProbeJson[];
  /** Contexts ending at the Assistant's turn after neutral prompts (where the report reads the persona score). */
  neutral: number[][];
}

export interface RuntimeInfo {
  backend: string;
  /** The device as the browser names it (WebGPU adapter, WebGL renderer, or "CPU (wasm)"). */
  device: string;
  /** Backends tried before this one, with why each did not start. */
  skipped: string[];
}

export interface BenchSpec {
  config: ModelConfig;
  batch: number;
  steps: number;
  repeats: number;
  warmup: number;
  seed: number;
  adam: AdamWOptions;
  schedule: { lr: number; minLr: number; warmup: number; steps: number };
  /** [m, k, n] of the peak matmul. */
  peakShape: [number, number, number];
}

export interface BenchResult {
  runtime: RuntimeInfo;
  stepMs: number[];
  forwardMs: number[];
  peakGflops: number;
  loss: number;
  kernelCalls: number;
  computeKernelCalls: number;
  peakBytes: number;
  userAgent: string;
  /** Which step ran: loop.ts trainStep, or its async counterpart (WebGPU). */
  trainStep: 'trainStep' | 'trainStepAsync';
}

export interface ParitySpec {
  config: ModelConfig;
  batch: { batch: number; T: number; ids: number[]; targets: number[]; weights: number[] };
  optimizer: AdamWOptions & { lr: number; priorSteps: number };
}

export interface ParityResult {
  runtime: RuntimeInfo;
  loss: number;
  perturbedLoss: number;
  /** Gradients at the initial and at the perturbed weights, flat in parameter order. */
  grads: number[];
  perturbedGrads: number[];
  /** After one trainStep (own gradients, clipping, AdamW) from the fixture's moments. */
  stepLoss: number;
  gradNorm: number;
  after: number[];
  /** Which step ran: loop.ts trainStep, or its async counterpart (WebGPU). */
  trainStep: 'trainStep' | 'trainStepAsync';
}
