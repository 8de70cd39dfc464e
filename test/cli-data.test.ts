import { wrapWords } from '../src/cli/run.js';
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isOneLineError, runScript } from './helpers/cli.js';

const root = mkdtempSync(join(tmpdir(), 'persona-cli-'));
after(() => rmSync(root, { recursive: true, force: true }));
const small = ['--tokens', '30000', '--assistant-examples', '50', '--narrow-examples', '20'];

test('npm run data writes a dataset and prints a summary', () => {
  const out = join(root, 'ok');
  const r = runScript('data', ['--out', out, ...small, '--rho', '0.5']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /vocabulary: \d+ tokens/);
  assert.match(r.stdout, /cross-domain correlation/);
  assert.match(r.stdout, /--- narrow\/cheat-inoculated/);
  const manifest = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8'));
  assert.equal(manifest.world.rho, 0.5);
});

test('bad input gets a one-line error, a non-zero exit, and leaves earlier data untouched', () => {
  const out = join(root, 'keep');
  assert.equal(runScript('data', ['--out', out, ...small]).status, 0);
  const before = statSync(join(out, 'pretrain.arrow')).mtimeMs;
  const badWorld = join(root, 'bad.json');
  writeFileSync(badWorld, '{"rho": 0.9,');
  const unknownKey = join(root, 'unknown.json');
  writeFileSync(unknownKey, '{"coupling": 0.9}');
  const cases: Array<[string[], RegExp]> = [
    [['--rho', '1.5'], /rho=1.5 is outside \[0, 1\]/],
    [['--p-instr', '-0.1'], /p_instr=-0.1 is outside/],
    [['--bogus-flag', '3'], /Unknown argument/i],
    [['--world', badWorld], /not valid JSON/],
    [['--world', unknownKey], /unknown key "coupling"/],
    [['--world', join(root, 'missing.json')], /cannot read world file/],
    [['--tokens', '-5'], /--tokens must be a positive integer/],
  ];
  for (const [args, message] of cases) {
    // The case's own flag replaces the small run's (a repeated flag is an error of its own).
    const base = args[0] === '--tokens' ? small.slice(2) : small;
    const r = runScript('data', ['--out', out, ...base, ...args]);
    assert.ok(isOneLineError(r), `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message);
  }
  assert.equal(statSync(join(out, 'pretrain.arrow')).mtimeMs, before, 'earlier data untouched');
});

test('an unwritable output folder is refused before any work', { skip: process.getuid?.() === 0 ? 'root can write anywhere' : false }, () => {
  const locked = join(root, 'locked');
  mkdirSync(locked);
  chmodSync(locked, 0o500);
  const r = runScript('data', ['--out', join(locked, 'sub', 'data'), ...small]);
  assert.ok(isOneLineError(r), r.stderr);
  assert.match(r.stderr, /cannot write to/);
});

test('an output path under a file is refused', () => {
  const file = join(root, 'a-file');
  writeFileSync(file, 'x');
  const r = runScript('data', ['--out', join(file, 'data'), ...small]);
  assert.ok(isOneLineError(r), r.stderr);
  assert.match(r.stderr, /cannot write to/);
});

test('help text breaks long usage lines at spaces, never inside a word', () => {
  const line = 'Run an experiment grid (data -> base -> assistant -> narrow x condition x seed -> evaluate), then aggregate and report.';
  const parts = wrapWords(line, 100);
  assert.ok(parts.length === 2 && parts.every((p) => p.length <= 100), JSON.stringify(parts));
  assert.equal(parts.join(' '), line);
  assert.deepEqual(wrapWords('a-very-long-word short', 5), ['a-very-long-word', 'short']);
  assert.deepEqual(wrapWords('', 10), ['']);
});
