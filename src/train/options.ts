/** Training options and the checks that turn bad values into one-line errors (each stage's defaults: src/pipeline/stage-defaults.ts). */
import { MAX_GRAD_ACCUM } from './dropout-seeds.js';

export interface TrainOptions {
  steps: number;
  batch: number;
  gradAccum: number;
  lr: number;
  minLr: number;
  warmup: number;
  weightDecay: number;
  beta1: number;
  beta2: number;
  gradClip: number;
  seed: number;
  evalInterval: number;
  checkpointInterval: number;
  logInterval: number;
}

/** Options whose change makes a resumed run differ from an uninterrupted one. */
export const RESUME_KEYS: Array<keyof TrainOptions> = ['steps', 'batch', 'gradAccum', 'lr', 'minLr', 'warmup', 'weightDecay', 'beta1', 'beta2', 'gradClip', 'seed'];

export function validateTrainOptions(o: TrainOptions): TrainOptions {
  const positiveInt = (k: keyof TrainOptions) => {
    if (!Number.isInteger(o[k]) || o[k] < 1) throw new Error(`--${kebab(k)} must be a positive integer, got ${o[k]}`);
  };
  const nonNegative = (k: keyof TrainOptions) => {
    if (!Number.isFinite(o[k]) || o[k] < 0) throw new Error(`--${kebab(k)} must be >= 0, got ${o[k]}`);
  };
  positiveInt('steps');
  positiveInt('batch');
  positiveInt('gradAccum');
  if (o.gradAccum > MAX_GRAD_ACCUM) {
    throw new Error(`--grad-accum must be at most ${MAX_GRAD_ACCUM}, got ${o.gradAccum}: each micro-batch of a step draws dropout masks from the step's seed, and more would reuse the next step's`);
  }
  positiveInt('logInterval');
  if (!(o.lr > 0) || !Number.isFinite(o.lr)) throw new Error(`--lr must be > 0, got ${o.lr}`);
  nonNegative('minLr');
  nonNegative('warmup');
  nonNegative('weightDecay');
  nonNegative('gradClip');
  nonNegative('evalInterval');
  nonNegative('checkpointInterval');
  if (!Number.isInteger(o.seed)) throw new Error(`--seed must be an integer, got ${o.seed}`);
  for (const k of ['beta1', 'beta2'] as const) if (!(o[k] >= 0 && o[k] < 1)) throw new Error(`--${k} must be in [0, 1), got ${o[k]}`);
  return o;
}

export function kebab(k: string): string {
  return k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

/**
 * The options a resumed run uses: the checkpoint's, with any flag the user set explicitly. A flag
 * that contradicts the checkpoint on a key that changes the trajectory is an error.
 */
export function mergeForResume(saved: TrainOptions, explicit: Partial<TrainOptions>, out: string): TrainOptions {
  for (const k of RESUME_KEYS) {
    const v = explicit[k];
    if (v !== undefined && v !== saved[k]) {
      throw new Error(`--resume with a different config: --${kebab(k)} is ${v} but ${out} was trained with ${saved[k]}; drop the flag or choose another --out`);
    }
  }
  return { ...saved, ...Object.fromEntries(Object.entries(explicit).filter(([, v]) => v !== undefined)) };
}

/**
 * The settings of a run besides its training options, keyed by flag name: nested objects are
 * flattened (`lora: { rank }` is `lora-rank`), camelCase keys become kebab-case, `rename` maps
 * a key to its flag where they differ, and undefined becomes null (an absent setting is a value
 * too). Built from a pipeline's whole argument object, so a setting added later is covered.
 */
export function runIdentity(args: Record<string, unknown>, rename: Record<string, string> = {}): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const add = (key: string, v: unknown) => {
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
      for (const [k, x] of Object.entries(v)) add(`${key}-${kebab(k)}`, x);
    } else {
      out[key] = v === undefined ? null : v;
    }
  };
  for (const [k, v] of Object.entries(args)) add(rename[k] ?? kebab(k), v);
  return out;
}

const shown = (v: unknown) => (v === null || v === undefined ? '(not set)' : typeof v === 'string' ? v : JSON.stringify(v));

/**
 * Refuse to resume with a setting that differs from the checkpoint's (one line naming the flag).
 * Keys missing from `now` were not given (the checkpoint's value holds); keys the checkpoint did
 * not record (older checkpoints, settings added later) cannot be compared.
 */
export function compareRun(saved: Record<string, unknown> | undefined, now: Record<string, unknown>, out: string): void {
  if (!saved || typeof saved !== 'object') return;
  for (const [k, v] of Object.entries(now)) {
    if (v === undefined || !(k in saved)) continue;
    if (JSON.stringify(v) !== JSON.stringify(saved[k] ?? null)) {
      throw new Error(`--resume with a different run: --${k} is ${shown(v)} but ${out} was trained with ${shown(saved[k])}; drop the flag or choose another --out`);
    }
  }
}
