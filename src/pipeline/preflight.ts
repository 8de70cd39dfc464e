/**
 * Checks every command makes before any work starts, so that no command deletes or replaces
 * something it did not create: an output that is a file, a folder holding something else, a
 * finished checkpoint or dataset (without --overwrite), an unfinished run (without --resume or
 * --overwrite), an output that is or overlaps an input, and an output that cannot be written.
 */
import { existsSync, readdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import { assertWritable, recoverSwap } from '../util/fs.js';

export type CheckpointStatus = { kind: 'none' } | { kind: 'partial' | 'complete'; step: number | null; steps: number | null };

/** Whether `dir` holds a checkpoint, and whether its run finished (state.json's `complete`). */
export function checkpointStatus(dir: string): CheckpointStatus {
  if (!existsSync(join(dir, 'config.json'))) return { kind: 'none' };
  let step: number | null = null;
  let steps: number | null = null;
  let complete = false;
  try {
    const state = JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')) as { complete?: boolean; loop?: { step?: number } };
    const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as { train?: { steps?: number } };
    complete = state.complete === true;
    step = typeof state.loop?.step === 'number' ? state.loop.step : null;
    steps = typeof config.train?.steps === 'number' ? config.train.steps : null;
  } catch {
    // unreadable: an unfinished (or corrupt) run
  }
  return { kind: complete ? 'complete' : 'partial', step, steps };
}

const real = (p: string) => {
  try {
    return realpathSync(p);
  } catch {
    return resolve(p);
  }
};

const inside = (child: string, parent: string) => {
  const r = relative(parent, child);
  return r !== '' && r.split(sep)[0] !== '..' && !isAbsolute(r);
};

export interface OutputCheck {
  /** The output folder. */
  out: string;
  kind: 'checkpoint' | 'data';
  resume?: boolean;
  overwrite?: boolean;
  /** Inputs the output must not be, contain or be inside (--data, --from, ...). */
  inputs?: Array<{ flag: string; path: string | undefined }>;
  log?: (line: string) => void;
}

/** Refuse (one line) an output that would replace or delete something this command did not create. */
export function checkOutput(c: OutputCheck): void {
  const out = resolve(c.out);
  if (c.resume && c.overwrite) throw new Error('--resume and --overwrite contradict each other: --resume continues the run in --out, --overwrite starts it again');
  for (const line of recoverSwap(out)) c.log?.(line);
  if (existsSync(out) && !statSync(out).isDirectory()) throw new Error(`--out ${out} is a file, not a folder; choose another --out (the file is left untouched)`);
  for (const input of c.inputs ?? []) {
    if (input.path === undefined) continue;
    const [o, i] = [real(out), real(input.path)];
    if (o === i) throw new Error(`--out ${out} is the same folder as ${input.flag}; choose another --out`);
    if (inside(i, o)) throw new Error(`--out ${out} contains ${input.flag} ${i}; choose another --out`);
    if (inside(o, i)) throw new Error(`--out ${out} is inside ${input.flag} ${i}; choose another --out`);
  }
  const listing = () => {
    const names = readdirSync(out);
    return `${names.slice(0, 3).join(', ')}${names.length > 3 ? ', ...' : ''}`;
  };
  if (c.kind === 'checkpoint') {
    const status = existsSync(out) ? checkpointStatus(out) : null;
    if (c.resume) {
      if (!status) throw new Error(`--resume: ${out} does not exist; run without --resume to start it`);
      if (status.kind === 'none') throw new Error(`--resume: ${out} holds no checkpoint; run without --resume to start it`);
    } else if (status) {
      const at = status.kind !== 'none' && status.step !== null ? ` (step ${status.step}${status.steps !== null ? ` of ${status.steps}` : ''})` : '';
      if (status.kind === 'complete' && !c.overwrite) throw new Error(`--out ${out} already holds a finished checkpoint${at}; pass --overwrite to train it again, or choose another --out`);
      if (status.kind === 'partial' && !c.overwrite) throw new Error(`--out ${out} holds an unfinished run${at}; continue it with --resume, or pass --overwrite to start again`);
      if (status.kind === 'none' && readdirSync(out).length > 0) throw new Error(`--out ${out} is a folder that is not a checkpoint (it holds ${listing()}); choose another --out`);
    }
  } else if (existsSync(out)) {
    if (existsSync(join(out, 'manifest.json'))) {
      if (!c.overwrite) throw new Error(`--out ${out} already holds a dataset; pass --overwrite to replace it, or choose another --out`);
    } else if (readdirSync(out).length > 0) {
      throw new Error(`--out ${out} is a folder that is not a dataset (it holds ${listing()}); choose another --out`);
    }
  }
  assertWritable(out, '--out');
}
