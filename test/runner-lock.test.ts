/**
 * Two experiment runners on one --runs folder at once: every cell is computed by exactly one of
 * them (the other waits for it and reuses it), and a lock left by a dead runner is taken over.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nativeBackendStatus } from '../src/backend/native/native-backend.js';
import { buildGraph } from '../src/experiment/graph.js';
import { lockPath } from '../src/experiment/runner.js';
import { loadSpec } from '../src/experiment/spec.js';
import { HOST } from '../src/util/fs.js';
import { ROOT, type CliResult } from './helpers/cli.js';

const SPEC = join(ROOT, 'test/fixtures/smoke-experiment.json');
const root = mkdtempSync(join(tmpdir(), 'persona-lock-'));
after(() => rmSync(root, { recursive: true, force: true }));
const backend = nativeBackendStatus().available ? 'native' : 'wasm';

function experiment(args: string[]): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/experiment.ts', '--spec', SPEC, '--backend', backend, '--workers', '1', '--replicates', '50', ...args], { cwd: ROOT, env: { ...process.env, CI: '1' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

test('two runners on one --runs folder compute each cell once; a dead runner\'s lock is taken over', async () => {
  const runs = join(root, 'runs');
  const nodes = buildGraph(loadSpec(SPEC), runs);
  // A runner that died holding the first data cell.
  const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
  const first = nodes.find((n) => n.kind === 'data')!;
  mkdirSync(first.dir, { recursive: true });
  writeFileSync(lockPath(first), JSON.stringify({ host: HOST, pid: dead, started: 'long ago' }));
  const [a, b] = await Promise.all([experiment(['--runs', runs, '--out', join(root, 'out-a')]), experiment(['--runs', runs, '--out', join(root, 'out-b')])]);
  assert.equal(a.status, 0, a.stderr);
  assert.equal(b.status, 0, b.stderr);
  const count = (r: CliResult) => {
    const m = /cells: (\d+) run, (\d+) reused, 0 failed, 0 skipped, 0 stopped/.exec(r.stderr);
    assert.ok(m, r.stderr);
    return { run: Number(m[1]), reused: Number(m[2]) };
  };
  const [ca, cb] = [count(a), count(b)];
  assert.equal(ca.run + cb.run, nodes.length, `each cell computed once (${ca.run} + ${cb.run})`);
  assert.equal(ca.run + ca.reused, nodes.length);
  assert.equal(cb.run + cb.reused, nodes.length);
  assert.ok(ca.run > 0 && cb.run > 0, 'both runners did some of the work');
  for (const n of nodes) {
    assert.ok(existsSync(join(n.dir, 'DONE.json')), n.id);
    assert.ok(!existsSync(lockPath(n)), `${n.id}: lock released`);
    assert.deepEqual(readdirSync(n.dir).filter((f) => /\.(tmp|old|stale)-/.test(f)), [], `${n.id}: no leftovers`);
  }
});
