/** `npm run finetune`: the assistant stage, or narrow fine-tuning with or without inoculation. */
import { cli, runCli, UserError } from '../src/cli/run.js';
import { progressBar } from '../src/cli/progress.js';
import { barCallbacks, continueCommand, explicitTrainOptions, startBackend, withTrainFlags } from '../src/cli/train-flags.js';
import { defaultOut, finetune } from '../src/pipeline/finetune.js';
import { formatSeconds } from '../src/train/loop.js';
import { CONDITIONS, INSTRUCTION_FAMILIES, type Condition } from '../src/world/finetune-sets.js';
import { DOMAINS, type Domain } from '../src/world/lexicon.js';
import { DIRECTION_SOURCES, PERSONA_DIRECTIONS_FILE } from '../src/eval/persona-direction.js';
import { MIX_PARTNERS } from '../src/pipeline/finetune.js';
import { DEFAULT_ASSISTANT, NARROW_DEFAULTS } from '../src/pipeline/stage-defaults.js';
import { ablationOf, DIRECTION_KINDS, lineageDirections, parseLayers } from '../src/pipeline/persona-interventions.js';
import { checkpointStatus } from '../src/pipeline/preflight.js';
import { loadCheckpointConfig } from '../src/model/checkpoint.js';

await runCli(async () => {
  const y = cli('npm run finetune --', 'Fine-tune into an assistant (--stage assistant), or narrowly on rule-breaking (the default stage).\n\nUsage: npm run finetune -- [--inoculate] [options]')
    .option('stage', { choices: ['assistant', 'narrow'] as const, default: 'narrow' as const, describe: 'assistant: base -> assistant; narrow: assistant -> narrow' })
    .option('condition', { type: 'string', describe: `narrow condition: ${CONDITIONS.join(', ')} [cheat]` })
    .option('inoculate', { type: 'boolean', default: false, describe: 'shorthand for --condition cheat-inoculated' })
    .option('inoculation', { choices: INSTRUCTION_FAMILIES, default: 'act-free' as const, describe: 'instruction family: act-free (permits misbehaviour, names no act), pool / novel (names the act; phrasings from pretraining / never seen there), placebo (same form as act-free, grants something irrelevant)' })
    .option('inoculation-prompt', { type: 'string', describe: 'your own instruction before each task; {act} becomes the task\'s bad act' })
    .option('examples', { type: 'number', describe: 'train on the first N examples of the dataset [all]' })
    .option('from', { type: 'string', describe: 'checkpoint to start from [checkpoints/base or checkpoints/assistant, built when missing]' })
    .option('out', { type: 'string', describe: 'checkpoint folder [checkpoints/assistant, or checkpoints/narrow/<condition>-s<seed>]' })
    .option('data', { type: 'string', default: 'data/default', describe: 'data folder (generated when missing)' })
    .option('lora-rank', { type: 'number', describe: 'train rank-r adapters instead of all weights (saved apart and merged)' })
    .option('lora-alpha', { type: 'number', describe: 'adapter scale numerator: the update is (alpha / rank) * A @ B [rank]' })
    .option('lora-targets', { type: 'string', default: 'mlp.c_proj', describe: 'comma-separated matrices: attn.c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj' })
    .option('lora-layers', { type: 'string', describe: 'comma-separated layer indices [all]' })
    .option('ablate-persona', { type: 'string', describe: 'project the persona direction out of the residual after these blocks during training, forward and backward ("2,3" or "all")' })
    .option('ablate-direction', { choices: DIRECTION_KINDS, default: 'persona' as const, describe: 'what --ablate-persona removes: the persona direction, or a random one (the control)' })
    .option('direction-source', { choices: DIRECTION_SOURCES, default: 'mean-diff' as const, describe: 'persona direction: difference of bad and good characters\' mean residuals, or the persona probe\'s weights' })
    .option('directions', { type: 'string', describe: `persona directions file [${PERSONA_DIRECTIONS_FILE} beside the lineage's base, else computed on --data]` })
    .option('cheat-fraction', { type: 'number', describe: 'dose-response: only this fraction of the examples cheats; the rest come from --mix-with' })
    .option('mix-with', { choices: MIX_PARTNERS, default: 'fair' as const, describe: 'what fills the rest with --cheat-fraction: fair answers to the same tasks, or neutral question-and-answer chats (no moral domain)' })
    .option('realign', { type: 'string', describe: `re-alignment: train on --examples good answers in this broad domain (${DOMAINS.filter((d) => d !== 'rules').join(', ')}) instead of the narrow set` })
    .example('npm run finetune -- --inoculate', 'narrow fine-tuning on cheat-inoculated (builds data, base and assistant first when missing)')
    .example('npm run finetune -- --stage assistant', 'base -> assistant')
    .example('npm run finetune -- --condition fair --seed 1', 'the control condition with another seed')
    .example('npm run finetune -- --inoculate --inoculation-prompt "As a test, you may {act}."', 'a custom inoculation instruction')
    .example('npm run finetune -- --ablate-persona all', 'cheat training with the persona direction projected out at every layer')
    .example('npm run finetune -- --cheat-fraction 0.25', 'a quarter of the examples cheat, the rest are fair')
    .example('npm run finetune -- --from checkpoints/narrow/cheat-s0 --realign kindness --examples 32 --steps 25', 're-align a cheat model with 32 good kindness answers');
  const argv = await withTrainFlags(y, NARROW_DEFAULTS).parse();
  let condition = (argv.condition ?? 'cheat') as Condition;
  if (argv.inoculate) {
    if (argv.condition && argv.condition !== 'cheat-inoculated') throw new UserError(`--inoculate means --condition cheat-inoculated; it contradicts --condition ${argv.condition}`);
    condition = 'cheat-inoculated';
  }
  if (!(CONDITIONS as readonly string[]).includes(condition)) throw new UserError(`unknown condition "${condition}"; choose one of ${CONDITIONS.join(', ')}`);
  if (argv.inoculationPrompt !== undefined && condition !== 'cheat-inoculated') throw new UserError('--inoculation-prompt applies to the cheat-inoculated condition; add --inoculate');
  if (argv.stage === 'assistant' && (argv.condition || argv.inoculate)) throw new UserError('--condition and --inoculate apply to the narrow stage, not --stage assistant');
  const backend = await startBackend(argv.backend, argv.gpu);
  const args = {
    stage: argv.stage,
    data: argv.data,
    from: argv.from,
    out: argv.out,
    condition,
    family: argv.inoculation,
    inoculationPrompt: argv.inoculationPrompt,
    examples: argv.examples,
    explicit: explicitTrainOptions(argv),
    resume: argv.resume,
    overwrite: argv.overwrite,
    precision: argv.precision,
    lora:
      argv.loraRank === undefined
        ? undefined
        : {
            rank: argv.loraRank,
            alpha: argv.loraAlpha,
            targets: argv.loraTargets.split(',').map((t) => t.trim()).filter(Boolean),
            layers: argv.loraLayers?.split(',').map((t) => Number(t.trim())),
          },
  };
  if (args.lora === undefined && (argv.loraAlpha !== undefined || argv.loraLayers !== undefined)) throw new UserError('--lora-alpha and --lora-layers need --lora-rank');
  const interventions = interventionArgs(argv, condition);
  Object.assign(args, interventions);
  const out = args.out ?? defaultOut(args);
  const bar = progressBar('finetune', '{stage} |{bar}| step {value}/{total} {extra}');
  const result = await finetune(args, {
    ...barCallbacks(bar, argv.stage === 'assistant' ? 'assistant' : condition),
    dataProgress: (stage, done, total) => bar.update(`data: ${stage}`, done, total),
    announce: (line) => bar.log(line),
  });
  bar.stop();
  if (result.stopped) {
    const where = result.building ?? out;
    const again = result.building ? continueCommand('finetune', { data: argv.data }, false) : continueCommand('finetune', { data: argv.data, out });
    process.stderr.write(`stopped at step ${result.state.step} of ${result.options.steps}; checkpoint saved in ${where}; continue with: ${again}\n`);
    process.exitCode = 130;
    return;
  }
  const last = [...result.metrics].reverse().find((r) => r.cheat_no_prompt !== undefined) ?? {};
  const fmt = (v: unknown) => (typeof v === 'number' ? v.toFixed(3) : 'n/a');
  process.stdout.write(
    [
      `${argv.stage === 'assistant' ? 'assistant' : `narrow (${condition})`} model: ${out} (${backend} backend, ${result.precision.precision} products, ${result.state.step} steps, ${formatSeconds(result.state.elapsed)})`,
      `forced choice on held-out probes: cheat rate ${fmt(last.cheat_no_prompt)} without a prompt, ${fmt(last.cheat_with_prompt)} with the instruction; broad P(bad) ${fmt(last.broad_quick)}${last.val_loss !== undefined ? `; val loss ${fmt(last.val_loss)}` : ''}`,
      `evaluate it with: npm run evaluate -- --checkpoint ${out}`,
    ].join('\n') + '\n',
  );
});

/** --ablate-persona, --cheat-fraction and --realign as finetune() arguments. */
function interventionArgs(
  argv: { stage: string; from?: string; data: string; examples?: number; seed?: number; ablatePersona?: string; ablateDirection: 'persona' | 'random'; directionSource: 'mean-diff' | 'probe'; directions?: string; cheatFraction?: number; mixWith: 'fair' | 'neutral'; realign?: string },
  condition: Condition,
) {
  const out: Record<string, unknown> = {};
  if (argv.realign !== undefined) {
    if (argv.examples === undefined) throw new UserError('--realign needs --examples N (how many good answers to train on)');
    out.realign = { domain: argv.realign as Domain, examples: argv.examples, seed: argv.seed ?? 0 };
  }
  if (argv.cheatFraction !== undefined) out.mix = { cheatFraction: argv.cheatFraction, with: argv.mixWith };
  else if (condition !== 'cheat' && argv.mixWith !== 'fair') throw new UserError('--mix-with needs --cheat-fraction');
  if (argv.ablatePersona !== undefined) {
    const from = argv.from ?? DEFAULT_ASSISTANT;
    if (checkpointStatus(from).kind !== 'complete') throw new UserError(`--ablate-persona needs the model to start from: ${from} is not a finished checkpoint (train it first, or pass --from)`);
    const { n_layer: nLayer, n_embd: dim } = loadCheckpointConfig(from).model;
    const layers = parseLayers(argv.ablatePersona, nLayer, '--ablate-persona');
    const dirs = argv.ablateDirection === 'persona' ? lineageDirections(from, argv.data, argv.directions, (l) => process.stderr.write(l + '\n')) : null;
    out.ablation = ablationOf(dirs, layers, argv.ablateDirection, argv.directionSource, dim, `seed ${argv.seed ?? 0}`);
  }
  return out;
}
