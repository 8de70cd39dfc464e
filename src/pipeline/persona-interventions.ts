/**
 * Turning the intervention flags (--ablate-persona, --steer) into directions: the persona
 * direction of a lineage's base model (computed on its data, or read from a saved
 * persona-directions.json), or a random direction of the same dimension as the control.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { loadProbes } from '../eval/probe-records.js';
import { steeringMarkdown, steeringProbes, steeringRows, summarizeSteering, type SteerRow } from '../eval/steering-eval.js';
import { lineageBase } from '../eval/evaluate-checkpoint.js';
import { directionOf, loadPersonaDirections, PERSONA_DIRECTIONS_FILE, personaDirections, randomDirection, savePersonaDirections, type DirectionSource, type PersonaDirections } from '../eval/persona-direction.js';
import { loadCheckpoint, loadCheckpointConfig } from '../model/checkpoint.js';
import { GPT } from '../model/gpt.js';
import type { FinetuneAblation } from './finetune.js';

export const DIRECTION_KINDS = ['persona', 'random'] as const;
export type DirectionKind = (typeof DIRECTION_KINDS)[number];

/** "2,3" or "all" -> layer indices, each checked against the model. */
export function parseLayers(text: string, nLayer: number, flag: string): number[] {
  const all = Array.from({ length: nLayer }, (_, i) => i);
  if (text.trim() === 'all') return all;
  const layers = text.split(',').map((t) => t.trim()).filter(Boolean).map(Number);
  if (layers.length === 0) throw new Error(`${flag} needs layer indices (e.g. 2,3) or "all"`);
  for (const l of layers) if (!Number.isInteger(l) || l < 0 || l >= nLayer) throw new Error(`${flag}: layer ${l} does not exist; the model has layers 0 to ${nLayer - 1}`);
  if (new Set(layers).size !== layers.length) throw new Error(`${flag}: a layer is listed twice`);
  return layers.sort((a, b) => a - b);
}

/**
 * The persona directions of the base model `from` descends from: read from `file` when given (or
 * from persona-directions.json beside the base), else computed on `data`.
 */
export function lineageDirections(from: string, data: string, file?: string, log: (line: string) => void = () => {}): PersonaDirections {
  const base = lineageBase(from);
  const saved = file ?? join(base, PERSONA_DIRECTIONS_FILE);
  if (existsSync(saved)) return loadPersonaDirections(saved);
  if (file) throw new Error(`--directions ${file} does not exist`);
  log(`computing the persona directions of ${base} on ${data} (held-out scenes, every layer)`);
  const ckpt = loadCheckpoint(base);
  const model = new GPT(ckpt.config.model, ckpt.weights);
  try {
    const d = personaDirections(model, data);
    // Kept beside the base, so the next run of this lineage reads them instead of refitting.
    try {
      savePersonaDirections(saved, d);
    } catch (err) {
      log(`could not save ${saved} (${(err as Error).message}); the directions are recomputed next time`);
    }
    return d;
  } finally {
    model.dispose();
  }
}

/** One direction per layer: the persona direction (mean difference or probe) or a random one (seeded per layer). */
export function ablationOf(d: PersonaDirections | null, layers: number[], kind: DirectionKind, source: DirectionSource, dim: number, seed: string): FinetuneAblation {
  const directions = new Map<number, Float32Array>();
  for (const layer of layers) directions.set(layer, kind === 'random' ? randomDirection(dim, `${seed}:${layer}`) : directionOf(d!, layer, source));
  return { name: kind === 'random' ? `random (${seed})` : `persona ${source}`, directions };
}

/** "L:ALPHA" -> its parts, checked. */
export function parseSteer(text: string, nLayer: number): { layer: number; alpha: number } {
  const m = /^\s*(\d+)\s*:\s*(-?[\d.]+(?:e-?\d+)?)\s*$/i.exec(text);
  if (!m) throw new Error(`--steer takes LAYER:ALPHA (e.g. 2:4 or 3:-2), got "${text}"`);
  const layer = Number(m[1]);
  const alpha = Number(m[2]);
  if (layer >= nLayer) throw new Error(`--steer: layer ${layer} does not exist; the model has layers 0 to ${nLayer - 1}`);
  if (!Number.isFinite(alpha)) throw new Error(`--steer: alpha must be a number, got "${m[2]}"`);
  return { layer, alpha };
}

/**
 * The steering dose table of one checkpoint (npm run evaluate -- --steer L:ALPHA ...): forced-choice
 * P(bad) and answer mass at alpha 0 and each requested alpha, along the lineage's persona direction
 * and along a random direction (the control).
 */
export function steerCheckpoint(
  dir: string,
  steers: string[],
  o: { data?: string; probes?: string; directions?: string; source: DirectionSource },
  log: (line: string) => void = () => {},
): { rows: SteerRow[]; markdown: string } {
  // Every flag is checked against the model's shape before weights, data or directions are read.
  const cfg = loadCheckpointConfig(dir).model;
  const parsed = steers.map((s) => parseSteer(s, cfg.n_layer));
  const ckpt = loadCheckpoint(dir);
  const layers = [...new Set(parsed.map((p) => p.layer))];
  const data = resolve(o.data ?? ckpt.config.data);
  if (!existsSync(join(data, 'probes.arrow')) && !o.probes) throw new Error(`the data folder ${data} is missing; pass --data <folder> (the one the checkpoint was trained on)`);
  const probes = steeringProbes(loadProbes(o.probes ?? join(data, 'probes.arrow'), ckpt.vocab));
  const dirs = lineageDirections(dir, data, o.directions, log);
  const model = new GPT(cfg, ckpt.weights);
  const rows: SteerRow[] = [];
  try {
    for (const layer of layers) {
      const alphas = [0, ...parsed.filter((p) => p.layer === layer).map((p) => p.alpha)].filter((a, i, xs) => xs.indexOf(a) === i);
      rows.push(...steeringRows(model, probes, layer, directionOf(dirs, layer, o.source), `persona ${o.source}`, alphas));
      rows.push(...steeringRows(model, probes, layer, randomDirection(cfg.n_embd, `steer:${layer}`), 'random', alphas));
    }
  } finally {
    model.dispose();
  }
  return { rows, markdown: steeringMarkdown(summarizeSteering(rows)) };
}
