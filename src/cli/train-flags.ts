/** Training flags shared by pretrain and finetune; no yargs defaults, so --resume can tell what was set. */
import type { Argv } from 'yargs';
import { hideBin } from 'yargs/helpers';
import { BACKEND_CHOICES, describeBackend, selectBackend, type BackendChoice } from '../backend/select-backend.js';
import { PRECISION_CHOICES, type PrecisionChoice } from '../backend/resolve-precision.js';
import type { TrainOptions } from '../train/options.js';
import type { ProgressBar } from './progress.js';

export function withTrainFlags<T>(y: Argv<T>, defaults: TrainOptions) {
  return y
    .option('steps', { type: 'number', describe: `optimizer steps${defaults.steps ? ` [${defaults.steps}]` : ''}` })
    .option('batch', { type: 'number', describe: `sequences per micro-batch [${defaults.batch}]` })
    .option('grad-accum', { type: 'number', describe: `micro-batches per step [${defaults.gradAccum}]` })
    .option('lr', { type: 'number', describe: `peak learning rate [${defaults.lr}]` })
    .option('min-lr', { type: 'number', describe: `final learning rate of the cosine [${defaults.minLr}]` })
    .option('warmup', { type: 'number', describe: `warmup steps [${defaults.warmup}]` })
    .option('weight-decay', { type: 'number', describe: `AdamW decoupled weight decay on 2-D weights [${defaults.weightDecay}]` })
    .option('grad-clip', { type: 'number', describe: `global gradient-norm clip, 0 = off [${defaults.gradClip}]` })
    .option('seed', { type: 'number', describe: `seed for init, batches and dropout [${defaults.seed}]` })
    .option('eval-interval', { type: 'number', describe: `evaluate every N steps [${defaults.evalInterval}]` })
    .option('checkpoint-interval', { type: 'number', describe: `checkpoint every N steps [${defaults.checkpointInterval}]` })
    .option('resume', { type: 'boolean', default: false, describe: 'continue the run in --out exactly where it stopped' })
    .option('overwrite', { type: 'boolean', default: false, describe: 'replace the checkpoint in --out, finished or not (otherwise refused)' })
    .option('backend', { choices: BACKEND_CHOICES, default: 'auto' as BackendChoice, describe: 'tfjs backend (auto: tensorflow, native, wasm, cpu)' })
    .option('gpu', { type: 'boolean', default: false, describe: 'use @tensorflow/tfjs-node-gpu (must be installed)' })
    .option('precision', {
      choices: PRECISION_CHOICES,
      describe: 'products of the training steps: fp32, or bf16 with fp32 accumulation, weights and optimizer state (native backend); auto: bf16 where the CPU has AVX512-BF16 or AMX, else fp32; --resume keeps the checkpoint\'s [fp32: bf16 trained no faster here, and delayed persona inference in the one pretraining run compared]',
    });
}

export interface TrainFlagValues {
  steps?: number;
  batch?: number;
  gradAccum?: number;
  lr?: number;
  minLr?: number;
  warmup?: number;
  weightDecay?: number;
  gradClip?: number;
  seed?: number;
  evalInterval?: number;
  checkpointInterval?: number;
}

export function explicitTrainOptions(a: TrainFlagValues): Partial<TrainOptions> {
  return {
    steps: a.steps,
    batch: a.batch,
    gradAccum: a.gradAccum,
    lr: a.lr,
    minLr: a.minLr,
    warmup: a.warmup,
    weightDecay: a.weightDecay,
    gradClip: a.gradClip,
    seed: a.seed,
    evalInterval: a.evalInterval,
    checkpointInterval: a.checkpointInterval,
  };
}

export async function startBackend(choice: BackendChoice, gpu: boolean): Promise<string> {
  const info = await selectBackend(choice, gpu);
  process.stderr.write(`${describeBackend(info)}\n`);
  return info.name;
}

/** Loop callbacks that drive a progress bar. */
export function barCallbacks(bar: ProgressBar, name: string) {
  return {
    progress: (step: number, total: number, fields: Record<string, string | number>) => bar.update(name, step, total, fields),
    log: (line: string) => bar.log(line),
  };
}

/** A shell word, single-quoted when it needs to be. */
export function shellQuote(word: string): string {
  return /^[A-Za-z0-9_./:=@%+,-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/**
 * The command that continues a stopped run: this command line as given, plus every flag of
 * `required` it did not give (so a default that changes later cannot change the run), then
 * --resume (without a --overwrite, which would start it again); with `resume` false, the same
 * command again (an earlier stage it was building continues by itself).
 */
export function continueCommand(script: string, required: Record<string, string | undefined>, resume = true): string {
  const drop = resume ? /^--(no-)?(resume|overwrite)(=.*)?$/ : /^--(no-)?resume(=.*)?$/;
  const args = hideBin(process.argv).filter((a) => !drop.test(a));
  const given = (flag: string) => args.some((a) => a === `--${flag}` || a.startsWith(`--${flag}=`));
  for (const [flag, value] of Object.entries(required)) if (value !== undefined && !given(flag)) args.push(`--${flag}`, value);
  if (resume) args.push('--resume');
  return `npm run ${script} -- ${args.map(shellQuote).join(' ')}`;
}
