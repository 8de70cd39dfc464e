/** `npm run evaluate`: measure the persona shift of one or more checkpoints (DESIGN.md section 4). */
import { basename, join, relative, resolve } from 'node:path';
import { writeBytesAtomic } from '../src/util/atomic-files.js';
import { makeDir } from '../src/util/fs.js';
import { cli, runCli, UserError } from '../src/cli/run.js';
import { startBackend } from '../src/cli/train-flags.js';
import { BACKEND_CHOICES, type BackendChoice } from '../src/backend/select-backend.js';
import { DEFAULT_EVALUATE, evaluateCheckpoint } from '../src/eval/evaluate-checkpoint.js';
import { writeEvalRows } from '../src/eval/eval-rows.js';
import { summarize, summaryMarkdown, type SummaryRow } from '../src/eval/checkpoint-summary.js';
import { writeSummaryRows } from '../src/eval/checkpoint-summary-arrow.js';
import { DIRECTION_SOURCES, PERSONA_DIRECTIONS_FILE } from '../src/eval/persona-direction.js';
import { writeSteerRows } from '../src/eval/steering-eval.js';
import { steerCheckpoint } from '../src/pipeline/persona-interventions.js';

await runCli(async () => {
  const argv = await cli('npm run evaluate --', 'Evaluate checkpoints on the held-out probes: broad persona shift, narrow behaviour, persona inference, persona probe, coherence.\n\nUsage: npm run evaluate -- --checkpoint <dir> [--checkpoint <dir> ...]')
    .option('checkpoint', { type: 'string', array: true, describe: 'checkpoint folder(s) (required; repeat to compare several)' })
    .option('samples', { type: 'number', default: DEFAULT_EVALUATE.samples, describe: 'sampled answers per probe at temperature 1 (0 = forced choice only)' })
    .option('seed', { type: 'number', default: DEFAULT_EVALUATE.seed, describe: 'sampling seed' })
    .option('layer', { type: 'number', describe: 'residual layer of the persona probe [the layer with the best held-out accuracy]' })
    .option('probes', { type: 'string', describe: 'probes.arrow to use [the data folder\'s]' })
    .option('data', { type: 'string', describe: 'data folder [the one the checkpoint was trained on]' })
    .option('probe-source', { choices: ['base', 'self'] as const, default: 'base' as const, describe: 'fit the persona probe on the pretrained ancestor (comparable across checkpoints) or on the checkpoint itself' })
    .option('out', { type: 'string', default: 'results/eval', describe: 'folder for <checkpoint>.arrow, <checkpoint>.md and summary files' })
    .option('steer', { type: 'string', array: true, describe: 'LAYER:ALPHA: instead of the full evaluation, forced-choice P(bad) per domain and answer mass with alpha x the unit persona direction added to blocks.LAYER.hook_resid_post at the answer positions, beside alpha 0 and a random direction (repeat for more alphas)' })
    .option('direction-source', { choices: DIRECTION_SOURCES, default: 'mean-diff' as const, describe: 'persona direction for --steer: difference of bad and good characters\' mean residuals, or the persona probe\'s weights' })
    .option('directions', { type: 'string', describe: `persona directions file for --steer [${PERSONA_DIRECTIONS_FILE} beside the lineage's base, else computed]` })
    .option('backend', { choices: BACKEND_CHOICES, default: 'auto' as BackendChoice })
    .option('gpu', { type: 'boolean', default: false })
    .example('npm run evaluate -- --checkpoint checkpoints/narrow/cheat-s0 --checkpoint checkpoints/narrow/fair-s0', 'compare two narrow runs')
    .example('npm run evaluate -- --checkpoint checkpoints/assistant --steer 2:4 --steer 2:-4', 'steer the assistant along the persona direction at layer 2')
    .parse();
  if (!argv.checkpoint?.length) throw new UserError('pass --checkpoint <dir> (repeat it to compare several checkpoints)');
  if (!Number.isInteger(argv.samples) || argv.samples < 0) throw new UserError(`--samples must be a non-negative integer, got ${argv.samples}`);
  await startBackend(argv.backend, argv.gpu);
  const out = resolve(argv.out);
  if (argv.steer?.length) {
    for (const dir of argv.checkpoint) {
      // Everything is computed (and every flag checked) before the first file is written.
      const { rows, markdown } = steerCheckpoint(resolve(dir), argv.steer, { data: argv.data, probes: argv.probes, directions: argv.directions, source: argv.directionSource }, (l) => process.stderr.write(`${l}\n`));
      makeDir(out);
      const name = fileLabel(dir);
      writeSteerRows(join(out, `${name}.steer.arrow`), rows, { checkpoint: resolve(dir) });
      writeBytesAtomic(join(out, `${name}.steer.md`), `# Steering ${dir}\n\n${markdown}\n`);
      process.stdout.write(`# ${dir}\n\n${markdown}\n`);
    }
    return;
  }
  makeDir(out);
  const all: SummaryRow[] = [];
  for (const dir of argv.checkpoint) {
    const started = performance.now();
    const result = evaluateCheckpoint(resolve(dir), { ...DEFAULT_EVALUATE, samples: argv.samples, seed: argv.seed, layer: argv.layer, probes: argv.probes, data: argv.data, probeSource: argv.probeSource }, (l) => process.stderr.write(`${l}\n`));
    const name = fileLabel(dir);
    const summary = summarize(result.rows, dir);
    writeEvalRows(join(out, `${name}.arrow`), result.rows, { checkpoint: resolve(dir), stage: result.stage, samples: String(argv.samples), seed: String(argv.seed) });
    writeBytesAtomic(join(out, `${name}.md`), `# Evaluation of ${dir}\n\n${summaryMarkdown(summary)}\n`);
    all.push(...summary);
    process.stderr.write(`${dir}: ${result.rows.length} rows in ${((performance.now() - started) / 1000).toFixed(1)} s -> ${join(argv.out, name)}.arrow\n`);
  }
  const markdown = summaryMarkdown(all);
  if (argv.checkpoint.length > 1) {
    writeBytesAtomic(join(out, 'summary.md'), `# Evaluation summary\n\n${markdown}\n`);
    writeSummaryRows(join(out, 'summary.arrow'), all);
  }
  process.stdout.write(`${markdown}\n`);
});

/** A file name for a checkpoint path: relative to the working folder, slashes as "__". */
function fileLabel(dir: string): string {
  const rel = relative(process.cwd(), resolve(dir));
  return (rel.startsWith('..') ? basename(resolve(dir)) : rel).replace(/[\\/]/g, '__') || 'checkpoint';
}
