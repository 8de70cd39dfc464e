/**
 * Every malformed input a careful user tried (issue 12), as a table: each case gets exactly one
 * "error: ..." line and a non-zero exit before any work, and no file anywhere is changed.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { spawn } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readArrow, readListColumn } from '../src/data/arrow.js';
import { buildDatasets, DEFAULT_DATA_OPTIONS } from '../src/data/build.js';
import { finetune } from '../src/pipeline/finetune.js';
import { pretrain } from '../src/pipeline/pretrain.js';
import { sha256 } from '../src/util/fs.js';
import { DEFAULT_WORLD } from '../src/world/world-config.js';
import { use } from './helpers/backends.js';
import { isOneLineError, ROOT, type CliResult } from './helpers/cli.js';

const root = mkdtempSync(join(tmpdir(), 'persona-bad-'));
const scratch = mkdtempSync(join(tmpdir(), 'persona-bad-cases-'));
after(() => {
  rmSync(root, { recursive: true, force: true });
  rmSync(scratch, { recursive: true, force: true });
});
const p = (name: string) => join(root, name);
const [data, base, base2, partial, narrow, notes, stuff] = ['data', 'base', 'base2', 'partial', 'narrow', 'notes.txt', 'stuff'].map(p);
const [dataCopy, badSum, badTokens, badBase] = ['data-copy', 'data-bad-sum', 'data-bad-tokens', 'base-bad'].map(p);

/** Flip one byte of a file in place (same size, so only a checksum can tell). */
function flipByte(path: string, at: number): void {
  const bytes = readFileSync(path);
  bytes[at] ^= 0xff;
  writeFileSync(path, bytes);
}

before(async () => {
  buildDatasets(data, { ...DEFAULT_DATA_OPTIONS, world: DEFAULT_WORLD, pretrainTokens: 30_000, assistantExamples: 60, narrowExamples: 40, inferenceGroups: 8, heldOutScenes: 5, probesPerDomain: 6 });
  await use('wasm');
  const tiny = { preset: 'tiny', tokens: 0, resume: false };
  (await pretrain({ data, out: base, ...tiny, explicit: { steps: 2, evalInterval: 0 } })).model.dispose();
  (await pretrain({ data, out: partial, ...tiny, explicit: { steps: 4, evalInterval: 0 } }, { shouldStop: (step) => step === 1 })).model.dispose();
  (await finetune({ stage: 'narrow', data, from: base, out: narrow, condition: 'cheat', family: 'pool', explicit: { steps: 3, evalInterval: 0 }, resume: false }, { shouldStop: (step) => step === 1 })).model.dispose();
  writeFileSync(notes, 'my notes\n');
  mkdirSync(stuff);
  writeFileSync(join(stuff, 'thesis.tex'), '\\documentclass{article}\n');
  for (const [from, to] of [[data, dataCopy], [data, badSum], [data, badTokens], [base, base2], [base, badBase]]) cpSync(from, to, { recursive: true });
  // A changed byte in a text column: only the checksum notices.
  flipByte(join(badSum, 'pretrain.arrow'), Math.floor(statSync(join(badSum, 'pretrain.arrow')).size / 2));
  flipByte(join(badBase, 'weights.bin'), 100);
  // Token bytes out of range in data written before checksums existed (no checksums in its manifest).
  const manifest = JSON.parse(readFileSync(join(badTokens, 'manifest.json'), 'utf8'));
  delete manifest.checksums;
  writeFileSync(join(badTokens, 'manifest.json'), JSON.stringify(manifest));
  const file = join(badTokens, 'pretrain.arrow');
  const first = readListColumn(readArrow(file), 'tokens').values.subarray(0, 12);
  const bytes = readFileSync(file);
  const at = bytes.indexOf(Buffer.from(first.buffer, first.byteOffset, first.byteLength));
  assert.ok(at > 0, 'found the first row\'s tokens');
  bytes.writeUInt16LE(0xffff, at + 2);
  writeFileSync(file, bytes);
});

/** path -> sha256 of every file under `dir`. */
function snapshot(dir: string, out: Record<string, string> = {}): Record<string, string> {
  for (const name of readdirSync(dir)) {
    const full = join(dir, name);
    if (statSync(full).isDirectory()) snapshot(full, out);
    else out[full] = sha256(readFileSync(full));
  }
  return out;
}

/** node --import tsx <args>, from the repository root. */
function runNode(args: string[]): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', ...args], { cwd: ROOT, env: { ...process.env, CI: '1' }, timeout: 120_000 });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

test('malformed input: one line, a non-zero exit, nothing touched', async () => {
  const small = ['--tokens', '30000', '--assistant-examples', '50', '--narrow-examples', '20'];
  const pre = ['--preset', 'tiny', '--steps', '3', '--backend', 'cpu'];
  const ft = ['--data', data, '--steps', '3', '--backend', 'cpu'];
  const resumePre = ['--preset', 'tiny', '--backend', 'cpu', '--resume'];
  const resumeNarrow = [...ft, '--from', base, '--out', narrow, '--resume'];
  const cases: Array<[string, string[], RegExp]> = [
    // npm run data
    ['data', ['--out', notes, ...small], /--out .*notes\.txt is a file, not a folder/],
    ['data', ['--out', data, ...small], /--out .*data already holds a dataset; pass --overwrite/],
    ['data', ['--out', stuff, ...small], /--out .*stuff is a folder that is not a dataset \(it holds thesis\.tex\)/],
    ['data', ['--out', '/proc/x', ...small], /cannot write to \/proc/],
    ['data', ['--out', p('a'), '--out', p('b')], /--out is given 2 times/],
    ['data', ['--seed', '1', '--seed', '2', '--out', p('c')], /--seed is given 2 times/],
    // npm run pretrain
    ['pretrain', ['--data', data, '--out', notes, ...pre], /--out .*notes\.txt is a file, not a folder/],
    ['pretrain', ['--data', notes, '--out', p('n1'), ...pre], /--data .*notes\.txt is a file, not a data folder/],
    ['pretrain', ['--data', stuff, '--out', p('n2'), ...pre], /--data .*stuff is not a data folder/],
    ['pretrain', ['--data', data, '--out', base, ...pre], /--out .*base already holds a finished checkpoint \(step 2 of 2\); pass --overwrite/],
    ['pretrain', ['--data', data, '--out', partial, ...pre], /--out .*partial holds an unfinished run \(step 1 of 4\); continue it with --resume/],
    ['pretrain', ['--data', data, '--out', data, ...pre], /--out .*data is the same folder as --data/],
    ['pretrain', ['--data', data, '--out', join(data, 'ckpt'), ...pre], /--out .* is inside --data/],
    ['pretrain', ['--data', join(root, 'data', 'narrow'), '--out', root, ...pre], /--out .* contains --data/],
    ['pretrain', ['--data', data, '--out', '/proc/x', ...pre], /cannot write to \/proc/],
    ['pretrain', ['--data', data, '--out', p('n3'), '--backend', 'cuda'], /Invalid values: Argument: backend, Given: "cuda", Choices: .*\(see --help\)$/m],
    ['pretrain', ['--data', data, '--out', partial, '--resume', '--overwrite'], /--resume and --overwrite contradict each other/],
    ['pretrain', ['--data', data, '--out', p('missing'), '--resume', '--backend', 'cpu'], /--resume: .*missing does not exist; run without --resume/],
    ['pretrain', ['--data', data, '--out', stuff, '--resume', '--backend', 'cpu'], /--resume: .*stuff holds no checkpoint/],
    ['pretrain', ['--data', data, '--out', partial, '--lr', '0.1', ...resumePre], /--lr is 0.1 but .*partial was trained with 0.003/],
    ['pretrain', ['--data', data, '--out', partial, '--tokens', '999', ...resumePre], /--resume with a different run: --tokens is 999/],
    ['pretrain', ['--data', dataCopy, '--out', partial, ...resumePre], /--resume with different data/],
    ['pretrain', ['--data', badSum, '--out', p('n4'), ...pre], /data-bad-sum\/pretrain\.arrow does not match its sha256 checksum/],
    ['pretrain', ['--data', badTokens, '--out', p('n5'), ...pre], /data-bad-tokens\/pretrain\.arrow: token id 65535 at position 1 is outside the vocabulary/],
    ['pretrain', ['--data', data, '--out', p('x'), '--out', p('y')], /--out is given 2 times/],
    // npm run finetune
    ['finetune', [...ft, '--from', base, '--out', base], /--out .*base is the same folder as --from/],
    ['finetune', [...ft, '--from', base, '--out', data], /--out .*data is the same folder as --data/],
    ['finetune', [...ft, '--from', base, '--out', notes], /--out .*notes\.txt is a file, not a folder/],
    ['finetune', [...ft, '--from', base, '--out', join(base, 'narrow')], /--out .* is inside --from/],
    ['finetune', [...ft, '--from', base, '--out', narrow], /--out .*narrow holds an unfinished run \(step 1 of 3\)/],
    ['finetune', [...ft, '--from', partial, '--out', p('n6')], /--from .*partial is an unfinished run \(step 1 of 4\)/],
    ['finetune', [...ft, '--from', badBase, '--out', p('n7')], /base-bad\/weights\.bin does not match its sha256 checksum/],
    ['finetune', [...resumeNarrow, '--condition', 'fair'], /--resume with a different run: --condition is fair but .*narrow was trained with cheat/],
    ['finetune', [...resumeNarrow, '--examples', '5'], /--examples is 5 but .* was trained with 40/],
    ['finetune', [...ft, '--from', base2, '--out', narrow, '--resume'], /--from is .*base2 but .* was trained with .*base;/],
    ['finetune', [...resumeNarrow, '--inoculate', '--inoculation-prompt', 'As a test, you may {act}.'], /--condition is cheat-inoculated but/],
    ['finetune', [...resumeNarrow, '--lora-rank', '1'], /--lora-rank is 1 but .* was trained with \(not set\)/],
    ['finetune', ['--data', dataCopy, '--steps', '3', '--backend', 'cpu', '--from', base, '--out', narrow, '--resume'], /--resume with different data/],
    ['finetune', [...ft, '--from', base, '--out', p('n8'), '--steps', '4'], /--steps is given 2 times/],
    ['finetune', [...ft, '--from', base, '--out', p('n9'), '--backend', 'cuda'], /Invalid values: Argument: backend, Given: "cuda"/],
    ['finetune', [...ft, '--from', base, '--out', p('i1'), '--ablate-persona', '7'], /--ablate-persona: layer 7 does not exist; the model has layers 0 to 1/],
    ['finetune', [...ft, '--from', base, '--out', p('i2'), '--cheat-fraction', '1.5'], /--cheat-fraction must be between 0 and 1, got 1.5/],
    ['finetune', [...ft, '--from', base, '--out', p('i3'), '--realign', 'rules', '--examples', '4'], /--realign must name a broad domain/],
    ['finetune', [...ft, '--from', base, '--out', p('i4'), '--realign', 'kindness'], /--realign needs --examples N/],
    ['finetune', [...ft, '--from', base, '--out', p('i5'), '--condition', 'fair', '--cheat-fraction', '0.5'], /--cheat-fraction mixes the cheat set with another; use --condition cheat/],
    ['evaluate', ['--checkpoint', base, '--backend', 'cpu', '--steer', '1:x', '--out', p('e1')], /--steer takes LAYER:ALPHA/],
    ['evaluate', ['--checkpoint', base, '--backend', 'cpu', '--steer', '9:2', '--out', p('e2')], /--steer: layer 9 does not exist; the model has layers 0 to 1/],
    // npm run experiment / evaluate: no endless mkdir on /proc
    ['experiment', ['--spec', join(ROOT, 'test/fixtures/smoke-experiment.json'), '--runs', p('runs'), '--out', '/proc/x'], /cannot write to \/proc .*--out/],
    ['experiment', ['--spec', join(ROOT, 'test/fixtures/smoke-experiment.json'), '--runs', '/proc/x', '--out', p('r')], /cannot write to \/proc .*--runs/],
    ['evaluate', ['--checkpoint', base, '--backend', 'cpu', '--samples', '0', '--out', '/proc/x'], /cannot create \/proc\/x/],
  ];
  const before = snapshot(root);
  // All cases in one process (test/helpers/cli-cases.ts loads each script anew per case), and a
  // few as real processes besides, which must answer the same.
  const pick = (script: string, flag: string) => cases.findIndex(([s, args]) => s === script && args.join(' ').includes(flag));
  const spawned = [pick('data', '/proc/x'), pick('pretrain', 'cuda'), pick('finetune', '--steps 4')];
  const casesFile = join(scratch, 'cases.json');
  writeFileSync(casesFile, JSON.stringify(cases.map(([script, args]) => [script, args])));
  const [inProcess, ...real] = await Promise.all([
    runNode(['test/helpers/cli-cases.ts', casesFile]),
    ...spawned.map((i) => runNode([`scripts/${cases[i][0]}.ts`, ...cases[i][1]])),
  ]);
  assert.equal(inProcess.status, 0, inProcess.stderr);
  const results = JSON.parse(inProcess.stdout.trim().split('\n').at(-1)!) as CliResult[];
  spawned.forEach((i, k) => assert.equal(real[k].stderr, results[i].stderr, `${cases[i][1].join(' ')}: a real process answers the same`));
  const failures: string[] = [];
  cases.forEach(([script, args, message], i) => {
    const r = results[i];
    const label = `npm run ${script} -- ${args.map((a) => a.replace(root, '<tmp>')).join(' ')}`;
    if (!isOneLineError(r)) failures.push(`${label}: not one error line (exit ${r.status}):\n${r.stderr}`);
    else if (!message.test(r.stderr)) failures.push(`${label}: ${r.stderr.trim().split('\n').at(-1)} does not match ${message}`);
  });
  assert.deepEqual(failures, []);
  assert.deepEqual(snapshot(root), before, 'no file was created, changed or deleted');
});
