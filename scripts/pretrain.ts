/** `npm run pretrain`: train the base model from scratch (DESIGN.md section 3). */
import { cli, runCli } from '../src/cli/run.js';
import { progressBar } from '../src/cli/progress.js';
import { barCallbacks, continueCommand, explicitTrainOptions, startBackend, withTrainFlags } from '../src/cli/train-flags.js';
import { pretrain } from '../src/pipeline/pretrain.js';
import { WINDOW_STARTS } from '../src/data/batches.js';
import { DEFAULT_BASE, DEFAULT_PRESET, DEFAULT_PRETRAIN_TOKENS, DEFAULT_WINDOW_STARTS, PRETRAIN_DEFAULTS } from '../src/pipeline/stage-defaults.js';
import { formatSeconds } from '../src/train/loop.js';

await runCli(async () => {
  const y = cli('npm run pretrain --', 'Pretrain the base model on the world\'s scenes and chat transcripts.\n\nUsage: npm run pretrain -- [options]')
    .option('data', { type: 'string', default: 'data/default', describe: 'data folder (generated with the default world when missing)' })
    .option('out', { type: 'string', default: DEFAULT_BASE, describe: 'checkpoint folder' })
    .option('preset', { type: 'string', default: DEFAULT_PRESET, describe: 'model preset (tiny, small, medium) or a model JSON file' })
    .option('tokens', { type: 'number', describe: `training tokens (sets --steps when it is not given) [${DEFAULT_PRETRAIN_TOKENS}]` })
    .option('windows', { choices: WINDOW_STARTS, describe: `where training windows start: anywhere in the token stream, or at a document's start (--resume keeps the checkpoint's) [${DEFAULT_WINDOW_STARTS}]` })
    .example('npm run pretrain', 'the small model on data/default into checkpoints/base')
    .example('npm run pretrain -- --resume', 'continue an interrupted run')
    .example('npm run pretrain -- --preset tiny --tokens 200000 --out checkpoints/tiny', 'a quick smoke run');
  const argv = await withTrainFlags(y, PRETRAIN_DEFAULTS).parse();
  const backend = await startBackend(argv.backend, argv.gpu);
  const bar = progressBar('pretrain', '{stage} |{bar}| step {value}/{total} {extra}');
  const started = performance.now();
  const result = await pretrain(
    { data: argv.data, out: argv.out, preset: argv.preset, tokens: argv.tokens, explicit: explicitTrainOptions(argv), resume: argv.resume, overwrite: argv.overwrite, precision: argv.precision, windows: argv.windows },
    { ...barCallbacks(bar, 'pretrain'), dataProgress: (stage, done, total) => bar.update(`data: ${stage}`, done, total) },
  );
  bar.stop();
  const last = [...result.metrics].reverse().find((r) => r.val_loss !== undefined) ?? {};
  const fmt = (v: unknown) => (typeof v === 'number' ? v.toFixed(3) : 'n/a');
  const tps = result.metrics.length ? result.state.tokens / Math.max(result.state.elapsed, 1e-9) : 0;
  if (result.stopped) {
    process.stderr.write(`stopped at step ${result.state.step} of ${result.options.steps}; checkpoint saved in ${argv.out}; continue with: ${continueCommand('pretrain', { data: argv.data, preset: argv.preset, out: argv.out })}\n`);
    process.exitCode = 130;
    return;
  }
  process.stdout.write(
    [
      `base model: ${argv.out} (${backend} backend, ${result.precision.precision} products, step ${result.state.step}, ${result.state.tokens} tokens)`,
      `val loss ${fmt(last.val_loss)}; persona inference gap: scenes ${fmt(last.gap_human)} (true ${fmt(last.true_gap_human)}), Assistant ${fmt(last.gap_assistant)} (true ${fmt(last.true_gap_assistant)})`,
      `instructed bad act shifts P(bad) elsewhere by ${fmt(last.instructed_shift_human)} (true 0)`,
      `${Math.round(tps)} tokens/s, ${formatSeconds(result.state.elapsed)} of training (${formatSeconds((performance.now() - started) / 1000)} wall)`,
    ].join('\n') + '\n',
  );
});
