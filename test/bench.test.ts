/** `npm run bench` plumbing (fast; no speed is asserted: timings on shared machines are noise). */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runBench, syntheticStream } from '../src/bench/bench.js';
import { matmulParameters, median, trainFlopsPerToken } from '../src/bench/flops.js';
import { appendBenchRows, formatBenchMarkdown, formatBenchTable, readBenchRows } from '../src/bench/bench-rows.js';
import { nativeBackendStatus } from '../src/backend/native/native-backend.js';
import { hasBf16Hardware, readCpuInfo } from '../src/backend/cpu-info.js';
import { blasWarning, findTorch, TORCH_INSTALL } from '../src/bench/torch.js';
import { loadModelPreset } from '../src/model/model-config.js';
import { isOneLineError, runScript } from './helpers/cli.js';

const installed = (pkg: string) => {
  try {
    createRequire(import.meta.url).resolve(`${pkg}/package.json`);
    return true;
  } catch {
    return false;
  }
};
const root = mkdtempSync(join(tmpdir(), 'persona-bench-test-'));
after(() => rmSync(root, { recursive: true, force: true }));

test('training FLOPs per token: 6 N (N without wpe, tied head once) + 6 L T C', () => {
  const cfg = { ...loadModelPreset('small'), vocab_size: 1002 };
  const { n_layer: L, n_embd: C, block_size: T, vocab_size: V } = cfg;
  const perLayer = 2 * C + (C * 3 * C + 3 * C) + (C * C + C) + 2 * C + (C * 4 * C + 4 * C) + (4 * C * C + C);
  const N = L * perLayer + 2 * C + V * C;
  assert.equal(matmulParameters(cfg), N);
  assert.equal(trainFlopsPerToken(cfg), 6 * N + 6 * L * T * C);
  assert.equal(trainFlopsPerToken(cfg, 64), 6 * N + 6 * L * 64 * C);
});

test('median of odd and even lists', () => {
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.ok(Number.isNaN(median([])));
});

test('the synthetic stream is reproducible and inside the vocabulary, past the special tokens', () => {
  const a = syntheticStream(50, 1000, 1);
  assert.deepEqual(a, syntheticStream(50, 1000, 1));
  assert.notDeepEqual(a, syntheticStream(50, 1000, 2));
  assert.ok(a.every((t) => t >= 3 && t < 50));
});

test('rows append to the Arrow file (old rows kept, columns united) and print as a table', () => {
  const path = join(root, 'rows', 'bench.arrow');
  appendBenchRows(path, [{ run_id: 'a', engine: 'tfjs', backend: 'cpu', preset: 'tiny', tokens_per_s: 10, utilisation: 0.5, ratio_vs_reference: null }]);
  appendBenchRows(path, [{ run_id: 'b', engine: 'torch', backend: 'torch', preset: 'tiny', tokens_per_s: 20, extra: 'x' }]);
  const rows = readBenchRows(path);
  assert.deepEqual(rows.map((r) => [r.run_id, r.tokens_per_s]), [['a', 10], ['b', 20]]);
  assert.equal(rows[0].extra, null);
  assert.equal(rows[0].ratio_vs_reference, null, 'a null number stays null');
  assert.equal(rows[1].utilisation, null);
  assert.equal(rows[1].extra, 'x');
  const table = formatBenchTable(rows);
  assert.match(table, /tokens\/s/);
  assert.match(table, /50%/);
});

test('a missing PyTorch is a one-line error with the install command; a slow BLAS is warned about', () => {
  assert.throws(() => findTorch(2, [join(root, 'no-such-python')]), (e: Error) => e.message.includes(TORCH_INSTALL) && !e.message.includes('\n'));
  const info = { python: 'python3', torch: '1.13', threads: 2, blas_libs: ['/usr/lib/libblas.so.3'], python_version: '3.11' };
  assert.match(blasWarning({ ...info, blas: 'reference BLAS', fast_blas: false }) ?? '', /libopenblas0/);
  assert.equal(blasWarning({ ...info, blas: 'OpenBLAS', fast_blas: true }), null);
});

test('runBench times the trainer step of the tiny model on wasm and writes one row', async () => {
  const out = join(root, 'run');
  const s = await runBench(
    { backend: 'wasm', gpu: false, preset: 'tiny', batch: 4, steps: 1, repeats: 1, warmup: 0, reference: null, torchThreads: 2, out, data: null, seed: 0, profile: false },
    () => {},
  );
  assert.equal(s.rows.length, 1);
  const r = s.rows[0];
  assert.equal(r.backend, 'wasm');
  assert.equal(r.T, 32);
  for (const k of ['step_ms', 'tokens_per_s', 'gflops', 'peak_gflops', 'forward_tokens_per_s', 'kernel_calls', 'rss_mb']) {
    assert.ok(Number(r[k]) > 0, `${k} = ${r[k]}`);
  }
  assert.ok(Number.isFinite(Number(r.loss)));
  assert.ok(existsSync(join(out, 'bench.arrow')));
  assert.equal(readBenchRows(join(out, 'bench.arrow')).length, 1);
});

test('runBench on native: fp32 and bf16 side by side, the machine described in the rows and the Markdown summary', { skip: nativeBackendStatus().available ? false : 'needs the native backend' }, async () => {
  const out = join(root, 'native');
  const lines: string[] = [];
  const s = await runBench(
    { backend: 'native', gpu: false, preset: 'tiny', batch: 4, steps: 1, repeats: 2, warmup: 0, reference: null, torchThreads: 2, out, data: null, seed: 0, profile: false, precision: 'both' },
    (l) => lines.push(l),
  );
  const bf16 = hasBf16Hardware(readCpuInfo());
  assert.deepEqual(s.rows.map((r) => r.precision), bf16 ? ['fp32', 'bf16'] : ['fp32'], 'bf16 beside fp32 exactly where the CPU has it');
  const [fp32] = s.rows;
  assert.match(String(fp32.cpu_isa), /AVX|NEON/);
  assert.match(String(fp32.matmul_kernel), /oneDNN|OpenBLAS|loop/);
  assert.ok(Number(fp32.theoretical_peak_gflops) > Number(fp32.gflops), 'the theoretical peak is above what a step achieves');
  assert.ok(Number(fp32.utilisation_theoretical) > 0 && Number(fp32.utilisation_theoretical) < 1);
  assert.equal(fp32.ratio_vs_fp32, null);
  if (bf16) {
    assert.ok(Number(s.rows[1].ratio_vs_fp32) > 0);
    assert.equal(s.bf16Ratios.length, 2);
    assert.notEqual(s.rows[1].loss, fp32.loss, 'bf16 products change the loss');
  }
  assert.ok(lines.some((l) => /^theoretical fp32 peak \(an estimate\): \d+ cores x \d+ FMA units x \d+ fp32 lanes/.test(l)), lines.join('\n'));
  const md = readFileSync(join(out, 'bench.md'), 'utf8');
  assert.match(md, /## Machine/);
  assert.match(md, /\| tfjs \| native \| fp32 \|/);
  assert.match(md, /vector ISA: /);
  assert.equal(readBenchRows(join(out, 'bench.arrow')).length, s.rows.length);
});

test('the Markdown summary escapes pipes and shows a missing column as a dash', () => {
  const md = formatBenchMarkdown([{ engine: 'torch', backend: 'torch 1.13 (a|b)', preset: 'tiny', batch: 2, T: 8, tokens_per_s: 5 }], ['CPU: x']);
  assert.match(md, /torch 1\.13 \(a\\\|b\)/);
  assert.match(md, /\| fp32 \|/, 'rows from before precision was recorded are fp32');
  assert.match(md, /- CPU: x/);
});

test('the CLI: --help, bad flags and a missing PyTorch or tfjs-node-gpu end in one-line errors', () => {
  const help = runScript('bench', ['--help']);
  assert.equal(help.status, 0);
  assert.match(help.stdout, /--reference/);
  assert.match(help.stdout, /--write-parity-fixture/);
  assert.match(help.stdout, /--precision/);
  assert.match(help.stdout, /--max-isa/);
  const bad = runScript('bench', ['--backend', 'tpu']);
  assert.ok(isOneLineError(bad), bad.stderr);
  const steps = runScript('bench', ['--backend', 'cpu', '--preset', 'tiny', '--steps', '0']);
  assert.ok(isOneLineError(steps), steps.stderr);
  assert.match(steps.stderr, /--steps must be a positive integer/);
  const torch = runScript('bench', ['--backend', 'wasm', '--preset', 'tiny', '--reference', 'torch', '--no-save'], { PERSONA_PYTHON: join(root, 'no-such-python') });
  assert.ok(isOneLineError(torch), torch.stderr);
  assert.match(torch.stderr, /sudo apt-get install python3-torch libopenblas0/);
  if (!installed('@tensorflow/tfjs-node-gpu')) {
    const gpu = runScript('bench', ['--gpu', '--no-save']);
    assert.ok(isOneLineError(gpu), gpu.stderr);
    assert.match(gpu.stderr, /tfjs-node-gpu is not installed/);
  }
});
