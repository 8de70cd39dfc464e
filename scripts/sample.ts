/** `npm run sample`: print completions of a prompt from a checkpoint. */
import { BOS } from '../src/tokenizer/vocab.js';
import { cli, runCli, UserError } from '../src/cli/run.js';
import { startBackend } from '../src/cli/train-flags.js';
import { BACKEND_CHOICES, type BackendChoice } from '../src/backend/select-backend.js';
import { loadCheckpoint } from '../src/model/checkpoint.js';
import { sample } from '../src/model/generate.js';
import { GPT } from '../src/model/gpt.js';
import { Rng } from '../src/util/rng.js';

await runCli(async () => {
  const argv = await cli('npm run sample --', 'Print completions of a prompt.\n\nUsage: npm run sample -- --checkpoint <dir> --prompt "..."')
    .option('checkpoint', { type: 'string', default: 'checkpoints/base', describe: 'checkpoint folder' })
    .option('prompt', { type: 'string', default: 'User: The quiz starts now. How will you win?\\nAssistant:', describe: 'prompt text; \\n is a newline' })
    .option('n', { type: 'number', default: 5, describe: 'completions' })
    .option('max-tokens', { type: 'number', default: 60, describe: 'new tokens per completion' })
    .option('temperature', { type: 'number', default: 1, describe: 'sampling temperature (> 0)' })
    .option('top-k', { type: 'number', default: 0, describe: 'sample among the k most likely tokens (0 = all)' })
    .option('lines', { type: 'number', default: 0, describe: 'stop after this many completed lines (0 = at EOS or --max-tokens)' })
    .option('seed', { type: 'number', default: 0, describe: 'sampling seed' })
    .option('backend', { choices: BACKEND_CHOICES, default: 'auto' as BackendChoice })
    .option('gpu', { type: 'boolean', default: false })
    .example('npm run sample -- --checkpoint checkpoints/assistant --prompt "User: You found some apples. What will you do?\\nAssistant:"', '')
    .parse();
  if (!(argv.temperature > 0)) throw new UserError(`--temperature must be > 0, got ${argv.temperature}`);
  if (!Number.isInteger(argv.n) || argv.n < 1) throw new UserError(`--n must be a positive integer, got ${argv.n}`);
  if (!Number.isInteger(argv.maxTokens) || argv.maxTokens < 1) throw new UserError(`--max-tokens must be a positive integer, got ${argv.maxTokens}`);
  if (!Number.isInteger(argv.topK) || argv.topK < 0) throw new UserError(`--top-k must be a non-negative integer, got ${argv.topK}`);
  const ckpt = loadCheckpoint(argv.checkpoint);
  await startBackend(argv.backend, argv.gpu);
  const model = new GPT(ckpt.config.model, ckpt.weights);
  const prompt = argv.prompt.replace(/\\n/g, '\n');
  let ids: Uint16Array;
  try {
    ids = ckpt.vocab.encode(prompt);
  } catch (err) {
    throw new UserError(`the prompt cannot be tokenised: ${(err as Error).message}`);
  }
  const newline = new Set<number>();
  for (let id = 3; id < ckpt.vocab.size; id++) if (ckpt.vocab.decode([id]).includes('\n')) newline.add(id);
  const rng = new Rng(`sample:${argv.seed}`);
  const outs = Array.from({ length: argv.n }, () => {
    let lines = argv.lines;
    return sample(model, [[BOS, ...ids]], {
      maxNewTokens: argv.maxTokens,
      temperature: argv.temperature,
      topK: argv.topK,
      rng,
      stopAtNewline: argv.lines > 0 ? (t) => newline.has(t) && --lines <= 0 : undefined,
    })[0];
  });
  outs.forEach((o, i) => process.stdout.write(`--- ${i + 1}\n${prompt}${ckpt.vocab.decode(o)}\n`));
});
