/**
 * Running the interventions' own cells: a base model's persona directions, and a steering dose
 * table of one model (assistant or narrow) along its lineage's persona direction, a random
 * direction and the rho-0 twin's direction. (Ablation, dose and re-alignment runs are narrow
 * fine-tuning runs and go through the narrow cell.)
 */
import { join } from 'node:path';
import { loadVocab } from '../data/load.js';
import { loadPersonaDirections, PERSONA_DIRECTIONS_FILE, personaDirections, randomDirection, directionOf, savePersonaDirections, type DirectionSource } from '../eval/persona-direction.js';
import { loadProbes } from '../eval/probe-records.js';
import { steeringProbes, steeringRows, summarizeSteering, writeSteerRows, type SteerRow } from '../eval/steering-eval.js';
import { loadCheckpoint } from '../model/checkpoint.js';
import { GPT } from '../model/gpt.js';

export const STEER_FILE = 'steer.arrow';

/** The persona directions of a base model at every layer, saved in `outDir`. */
export function runDirectionCell(baseCheckpoint: string, data: string, outDir: string): Record<string, unknown> {
  const ckpt = loadCheckpoint(baseCheckpoint);
  const model = new GPT(ckpt.config.model, ckpt.weights);
  try {
    const d = personaDirections(model, data);
    savePersonaDirections(join(outDir, PERSONA_DIRECTIONS_FILE), d);
    return { layers: d.layers.map((l) => ({ layer: l.layer, cosine: l.cosine, mean_diff_norm: l.meanDiffNorm, resid_norm: l.residNorm })) };
  } finally {
    model.dispose();
  }
}

export interface SteerCellConfig {
  layer: number;
  alphas: number[];
  source: DirectionSource;
  /** Seed of the random control direction (one per lineage). */
  random_seed: string;
}

/** The steering dose table of one model: persona, random and (when given) twin directions, every alpha (0 included). */
export function runSteerCell(modelCheckpoint: string, data: string, directions: string, twinDirections: string | null, c: SteerCellConfig, outDir: string): Record<string, unknown> {
  const ckpt = loadCheckpoint(modelCheckpoint);
  const probes = steeringProbes(loadProbes(join(data, 'probes.arrow'), loadVocab(data)));
  const alphas = [...new Set([0, ...c.alphas])].sort((a, b) => a - b);
  const model = new GPT(ckpt.config.model, ckpt.weights);
  const rows: SteerRow[] = [];
  try {
    rows.push(...steeringRows(model, probes, c.layer, directionOf(loadPersonaDirections(directions), c.layer, c.source), 'persona', alphas));
    rows.push(...steeringRows(model, probes, c.layer, randomDirection(ckpt.config.model.n_embd, c.random_seed), 'random', alphas));
    if (twinDirections) rows.push(...steeringRows(model, probes, c.layer, directionOf(loadPersonaDirections(twinDirections), c.layer, c.source), 'twin', alphas));
  } finally {
    model.dispose();
  }
  writeSteerRows(join(outDir, STEER_FILE), rows, { checkpoint: modelCheckpoint });
  return { summary: summarizeSteering(rows).filter((s) => s.group === 'broad').map((s) => ({ direction: s.direction, alpha: s.alpha, p_bad: s.p_bad })) };
}
