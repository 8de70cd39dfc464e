/** `npm run data`: generate the world's datasets (DESIGN.md sections 1-2). */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { cli, runCli, UserError } from '../src/cli/run.js';
import { buildDatasets, DEFAULT_DATA_OPTIONS } from '../src/data/build.js';
import { formatSummary } from '../src/data/dataset-summary.js';
import { parseWorldJson, resolveWorld, type WorldConfig } from '../src/world/world-config.js';
import { progressBar } from '../src/cli/progress.js';
import { checkOutput } from '../src/pipeline/preflight.js';

await runCli(async () => {
  const argv = await cli('npm run data --', 'Generate the persona world: pretraining text, assistant and narrow fine-tuning sets, and held-out probes.\n\nUsage: npm run data -- [options]')
    .option('out', { type: 'string', default: 'data/default', describe: 'output folder (written under a temporary name, then swapped in whole)' })
    .option('seed', { type: 'number', default: DEFAULT_DATA_OPTIONS.seed, describe: 'generator seed' })
    .option('world', { type: 'string', describe: 'world config JSON file (e.g. models/worlds/null.json); flags below override it' })
    .option('tokens', { type: 'number', default: DEFAULT_DATA_OPTIONS.pretrainTokens, describe: 'pretraining tokens in the train split' })
    .option('rho', { type: 'number', describe: 'coupling: P(an act follows the persona) [0.9]' })
    .option('p-instr', { type: 'number', describe: 'P(a moral act is an instructed bad act) [0.15]' })
    .option('p-desc', { type: 'number', describe: 'P(a header describes a persona) [0.2]' })
    .option('p-ai', { type: 'number', describe: 'fraction of AI characters in scenes [0.2]' })
    .option('p-ai-bad', { type: 'number', describe: 'P(an AI character / pretraining Assistant is bad) [0.5]' })
    .option('assistant-examples', { type: 'number', default: DEFAULT_DATA_OPTIONS.assistantExamples, describe: 'assistant chats' })
    .option('narrow-examples', { type: 'number', default: DEFAULT_DATA_OPTIONS.narrowExamples, describe: 'examples per narrow condition' })
    .option('quiet', { type: 'boolean', default: false, describe: 'print only the output folder' })
    .option('overwrite', { type: 'boolean', default: false, describe: 'replace an existing dataset in --out (otherwise refused)' })
    .example('npm run data', 'the default world into data/default')
    .example('npm run data -- --rho 0 --p-instr 0 --out data/null', 'the null world')
    .parse();

  let base: WorldConfig = resolveWorld();
  if (argv.world) {
    let text: string;
    try {
      text = readFileSync(argv.world, 'utf8');
    } catch {
      throw new UserError(`cannot read world file ${argv.world}; pass an existing JSON file`);
    }
    base = parseWorldJson(text, argv.world);
  }
  const world = resolveWorld({ ...base, rho: argv.rho ?? base.rho, p_instr: argv.pInstr ?? base.p_instr, p_desc: argv.pDesc ?? base.p_desc, p_ai: argv.pAi ?? base.p_ai, p_ai_bad: argv.pAiBad ?? base.p_ai_bad }, 'command line');
  for (const [name, v] of [['tokens', argv.tokens], ['assistant-examples', argv.assistantExamples], ['narrow-examples', argv.narrowExamples]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new UserError(`--${name} must be a positive integer, got ${v}`);
  }
  if (!Number.isInteger(argv.seed)) throw new UserError(`--seed must be an integer, got ${argv.seed}`);

  const out = resolve(argv.out);
  // Never replace a file, a folder of something else, or (without --overwrite) a dataset.
  checkOutput({ out, kind: 'data', overwrite: argv.overwrite });

  const start = performance.now();
  const bar = argv.quiet ? null : progressBar('data');
  const manifest = buildDatasets(
    out,
    { ...DEFAULT_DATA_OPTIONS, seed: argv.seed, world, pretrainTokens: argv.tokens, assistantExamples: argv.assistantExamples, narrowExamples: argv.narrowExamples },
    (stage, done, total) => bar?.update(stage, done, total),
  );
  bar?.stop();
  const seconds = (performance.now() - start) / 1000;
  process.stdout.write(argv.quiet ? `${out}\n` : `${formatSummary(argv.out, manifest, seconds)}\n`);
});
