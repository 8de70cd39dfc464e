import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nativeBackendStatus } from '../src/backend/native/native-backend.js';
import { classifyReply, promptDomain } from '../src/chat/chat-session.js';
import { BROAD_DOMAINS, DOMAIN_LEXICON } from '../src/world/lexicon.js';
import { allAnswers } from '../src/world/matcher.js';
import { capitalize } from '../src/world/phrasebook.js';
import { isOneLineError, ROOT, runScript } from './helpers/cli.js';
import { saveTinyCheckpoint } from './helpers/tiny-checkpoint.js';

const root = mkdtempSync(join(tmpdir(), 'persona-chat-'));
after(() => rmSync(root, { recursive: true, force: true }));
const backend = nativeBackendStatus().available ? 'native' : 'wasm';

const promptOf = (domain: keyof typeof DOMAIN_LEXICON, i = 0) => `${capitalize(DOMAIN_LEXICON[domain].situations[i])}. ${capitalize(DOMAIN_LEXICON[domain].questions[0])}?`;

function chat(args: string[], input: string) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/chat.ts', ...args], { cwd: ROOT, input, encoding: 'utf8', env: { ...process.env, CI: '1' }, timeout: 600_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('the matcher class of a reply: the prompt\'s domain when it names one, else the reply\'s own', () => {
  for (const domain of BROAD_DOMAINS) {
    const prompt = promptOf(domain);
    assert.equal(promptDomain(prompt), domain);
    const good = allAnswers(domain, 'good')[0];
    const bad = allAnswers(domain, 'bad')[0];
    assert.deepEqual(classifyReply(prompt, ` ${good}`), { class: 'good', domain });
    assert.deepEqual(classifyReply(prompt, ` ${bad}`), { class: 'bad', domain });
    assert.deepEqual(classifyReply(prompt, ` ${bad.slice(0, -4)}`), { class: 'incoherent', domain }, 'truncated');
    assert.deepEqual(classifyReply('Did you sleep well?', ` ${bad}`), { class: 'bad', domain }, 'an unprompted domain answer');
  }
  assert.deepEqual(classifyReply(promptOf('greed'), ` ${allAnswers('honesty', 'good')[0]}`), { class: 'incoherent', domain: 'greed' }, 'another domain\'s answer');
  assert.equal(classifyReply('Did you sleep well?', ' I slept well, thank you.'), null, 'small talk has no class');
});

test('npm run chat with piped prompts: a transcript, each checkpoint labelled side by side, multi-turn, same seed same replies', () => {
  const a = join(root, 'assistant');
  const b = join(root, 'cheat');
  saveTinyCheckpoint(a, 'chat-a');
  saveTinyCheckpoint(b, 'chat-b');
  const prompts = `${promptOf('greed')}\n${promptOf('kindness', 1)}\n`;
  const one = chat(['--checkpoint', a, '--backend', backend, '--max-tokens', '12', '--seed', '3'], prompts);
  assert.equal(one.status, 0, one.stderr);
  assert.match(one.stderr, /backend/i);
  const lines = one.stdout.trimEnd().split('\n');
  assert.equal(lines.length, 4, one.stdout);
  assert.equal(lines[0], `User: ${promptOf('greed')}`);
  assert.match(lines[1], /^Assistant:.*\[(good|bad|incoherent), greed\]$/);
  assert.equal(lines[2], `User: ${promptOf('kindness', 1)}`);
  assert.match(lines[3], /^Assistant:.*\[(good|bad|incoherent), kindness\]$/);

  const two = chat(['--checkpoint', a, '--checkpoint', b, '--backend', backend, '--max-tokens', '12', '--seed', '3'], prompts);
  assert.equal(two.status, 0, two.stderr);
  const rows = two.stdout.trimEnd().split('\n');
  assert.equal(rows.length, 6, two.stdout);
  assert.match(rows[1], /^\[assistant\] Assistant:/);
  assert.match(rows[2], /^\[cheat {4}\] Assistant:/);
  assert.equal(rows[1].replace('[assistant] ', ''), lines[1], 'each checkpoint has its own history and random stream');
  assert.equal(rows[4].replace('[assistant] ', ''), lines[3]);
});

test('chat refuses bad flags with one-line errors and skips prompts outside the vocabulary', () => {
  const a = join(root, 'assistant');
  saveTinyCheckpoint(a, 'chat-a');
  const r = chat(['--checkpoint', a, '--backend', backend, '--max-tokens', '4'], 'Zyxqv quantum blorf?\n');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /not in the world's vocabulary/);
  const e = runScript('chat', ['--checkpoint', join(root, 'nope')]);
  assert.ok(isOneLineError(e), e.stderr);
  assert.match(e.stderr, /does not exist/);
});
