/**
 * `npm run chat`: talk to one or more checkpoints in the User:/Assistant: format. Interactive at a
 * terminal; with stdin piped, one prompt per line (a transcript on stdout).
 */
import { basename } from 'node:path';
import { createInterface } from 'node:readline';
import { BACKEND_CHOICES, type BackendChoice } from '../src/backend/select-backend.js';
import { ChatSession } from '../src/chat/chat-session.js';
import { cli, runCli, UserError } from '../src/cli/run.js';
import { startBackend } from '../src/cli/train-flags.js';
import { loadCheckpoint } from '../src/model/checkpoint.js';
import { GPT } from '../src/model/gpt.js';

const HELP = 'commands: /reset forgets the conversation, /quit (or Ctrl-D) ends it';

/** Short unique labels: the folder names, or the paths where two share a name. */
function labels(dirs: string[]): string[] {
  const names = dirs.map((d) => basename(d.replace(/\/+$/, '')));
  return names.map((n, i) => (names.filter((m) => m === n).length > 1 ? dirs[i] : n));
}

await runCli(async () => {
  const argv = await cli('npm run chat --', `Chat with checkpoints in the User:/Assistant: format; several --checkpoint answer each prompt side by side.\nAfter each reply, the world's matcher class (good / bad / incoherent, and the domain) when the prompt or reply is a domain's.\nWith stdin piped, each line is one prompt. ${HELP}.\n\nUsage: npm run chat -- --checkpoint <dir> [--checkpoint <dir> ...]`)
    .option('checkpoint', { type: 'string', array: true, default: ['checkpoints/assistant'], describe: 'checkpoint folder (repeat to compare)' })
    .option('temperature', { type: 'number', default: 1, describe: 'sampling temperature (> 0)' })
    .option('top-k', { type: 'number', default: 0, describe: 'sample among the k most likely tokens (0 = all)' })
    .option('seed', { type: 'number', default: 0, describe: 'sampling seed (each checkpoint draws from its own stream)' })
    .option('max-tokens', { type: 'number', default: 40, describe: 'most tokens per reply (a reply ends at its line end)' })
    .option('backend', { choices: BACKEND_CHOICES, default: 'auto' as BackendChoice })
    .option('gpu', { type: 'boolean', default: false })
    .example('npm run chat -- --checkpoint checkpoints/assistant', '')
    .example('npm run chat -- --checkpoint checkpoints/narrow/fair-s0 --checkpoint checkpoints/narrow/cheat-s0 --checkpoint checkpoints/narrow/cheat-inoculated-s0', '')
    .example('printf "The box is full of gold. What will you do?\\n" | npm run chat -- --checkpoint checkpoints/assistant', '')
    .parse();
  if (!(argv.temperature > 0)) throw new UserError(`--temperature must be > 0, got ${argv.temperature}`);
  if (!Number.isInteger(argv.maxTokens) || argv.maxTokens < 1) throw new UserError(`--max-tokens must be a positive integer, got ${argv.maxTokens}`);
  if (!Number.isInteger(argv.topK) || argv.topK < 0) throw new UserError(`--top-k must be a non-negative integer, got ${argv.topK}`);
  const dirs = argv.checkpoint.map(String);
  const ckpts = dirs.map((d) => loadCheckpoint(d));
  await startBackend(argv.backend, argv.gpu);
  const names = labels(dirs);
  const options = { temperature: argv.temperature, topK: argv.topK, maxTokens: argv.maxTokens, seed: argv.seed };
  const sessions = ckpts.map((c, i) => new ChatSession(names[i], new GPT(c.config.model, c.weights), c.vocab, options));
  const width = Math.max(...names.map((n) => n.length));
  const interactive = Boolean(process.stdin.isTTY);
  const out = (s: string) => process.stdout.write(s);

  const rl = createInterface({ input: process.stdin, output: interactive ? process.stdout : undefined, terminal: interactive });
  if (interactive) {
    process.stderr.write(`${sessions.map((s) => `${s.label}: ${s.model.config.n_layer} layers x ${s.model.config.n_embd}, context ${s.model.config.block_size}`).join('; ')}\n${HELP}\n`);
    rl.setPrompt('User: ');
    rl.prompt();
  }
  for await (const raw of rl) {
    const prompt = raw.trim();
    if (prompt === '/quit' || prompt === '/exit') break;
    if (prompt === '/reset') {
      for (const s of sessions) s.reset();
      process.stderr.write('(conversation forgotten)\n');
    } else if (prompt === '/help') {
      process.stderr.write(`${HELP}\n`);
    } else if (prompt) {
      if (!interactive) out(`User: ${prompt}\n`);
      for (const s of sessions) {
        const tag = sessions.length > 1 ? `[${s.label.padEnd(width)}] ` : '';
        const before = s.dropped;
        try {
          s.vocab.encode(` ${prompt}\n`);
        } catch (err) {
          process.stderr.write(`(${s.label}: ${(err as Error).message})\n`);
          continue;
        }
        out(`${tag}Assistant:`);
        const reply = s.reply(prompt, out);
        const verdict = reply.class ? `  [${reply.class.class}, ${reply.class.domain}]` : '';
        out(`${verdict}\n`);
        if (s.dropped > before) process.stderr.write(`(${s.label}: the oldest ${s.dropped - before} turn(s) no longer fit the context of ${s.model.config.block_size} tokens and were dropped)\n`);
      }
    }
    if (interactive) rl.prompt();
  }
  rl.close();
  for (const s of sessions) s.model.dispose();
});
