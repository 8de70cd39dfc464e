/** `npm run bench`: training and forward speed of a backend, optionally side by side with PyTorch (src/bench/). */
import { BACKEND_CHOICES, type BackendChoice } from '../src/backend/select-backend.js';
import { BENCH_DEFAULTS, BENCH_PRECISIONS, runBench, type BenchPrecision } from '../src/bench/bench.js';
import { MAX_ISA_CHOICES } from '../src/bench/machine.js';
import { BROWSER_BACKENDS, type BrowserBenchBackend } from '../src/bench/browser.js';
import { PARITY_DIR, writeParityFixture } from '../src/bench/parity.js';
import { formatBenchTable } from '../src/bench/bench-rows.js';
import { cli, runCli } from '../src/cli/run.js';
import { PRESETS } from '../src/model/model-config.js';

await runCli(async () => {
  const argv = await cli('npm run bench --', 'Time the real training step (and forward pass) of the GPT on a backend.\n\nUsage: npm run bench -- [options]')
    .option('backend', { choices: [...BACKEND_CHOICES, ...BROWSER_BACKENDS], default: 'auto' as BackendChoice | BrowserBenchBackend, describe: 'tfjs backend (auto: tensorflow, native, wasm, cpu; webgpu and webgl run in headless Chromium on this machine\'s GPU)' })
    .option('gpu', { type: 'boolean', default: false, describe: 'use @tensorflow/tfjs-node-gpu (must be installed)' })
    .option('preset', { choices: PRESETS, default: 'small' as (typeof PRESETS)[number], describe: 'model preset (models/<preset>.json; vocabulary of the world)' })
    .option('batch', { type: 'number', default: BENCH_DEFAULTS.batch, describe: 'sequences per step (each of the preset\'s context length)' })
    .option('steps', { type: 'number', default: BENCH_DEFAULTS.steps, describe: 'training steps per timed repeat' })
    .option('repeats', { type: 'number', default: BENCH_DEFAULTS.repeats, describe: 'timed repeats (paired rounds with --reference); medians are reported' })
    .option('warmup', { type: 'number', default: BENCH_DEFAULTS.warmup, describe: 'untimed steps first' })
    .option('reference', { choices: ['torch'] as const, describe: 'also run the PyTorch reference (python3-torch), alternating with tfjs' })
    .option('torch-threads', { type: 'number', default: BENCH_DEFAULTS.torchThreads, describe: 'torch.set_num_threads for the reference' })
    .option('data', { type: 'string', describe: 'train on this data folder\'s pretraining stream (default: a synthetic stream)' })
    .option('seed', { type: 'number', default: BENCH_DEFAULTS.seed, describe: 'seed for init, stream and batches' })
    .option('profile', { type: 'boolean', default: false, describe: 'print the per-kernel profile of one training step (stderr)' })
    .option('precision', { choices: BENCH_PRECISIONS, default: 'both' as BenchPrecision, describe: 'products in fp32, bf16 (fp32 accumulation; native backend), auto (what training picks), or both side by side (bf16 on native only)' })
    .option('max-isa', { choices: MAX_ISA_CHOICES, describe: 'approximate an older CPU: cap oneDNN (ONEDNN_MAX_CPU_ISA) and PyTorch (ATEN_CPU_CAPABILITY, OPENBLAS_CORETYPE) at this instruction set' })
    .option('out', { type: 'string', default: BENCH_DEFAULTS.out!, describe: 'results folder: rows are appended to <out>/bench.arrow' })
    .option('save', { type: 'boolean', default: true, describe: 'append the rows to <out>/bench.arrow (--no-save: only print)' })
    .option('write-parity-fixture', { type: 'boolean', default: false, describe: `regenerate the PyTorch parity fixture (${'test/fixtures/parity'}) and exit` })
    .example('npm run bench -- --backend native --reference torch', 'native fp32 and bf16 vs PyTorch on the small preset, 5 rounds')
    .example('npm run bench -- --backend native --reference torch --max-isa avx2', 'the same, approximating an AVX2-only machine')
    .example('npm run bench -- --backend cpu --steps 1 --repeats 3 --warmup 1', 'the slow pure-JS backend, briefly')
    .example('npm run bench -- --backend webgpu', 'the GPU through WebGPU in headless Chromium (apt-get install chromium)')
    .example('npm run bench -- --write-parity-fixture', 'PyTorch loss, gradients and AdamW step for test/parity.test.ts')
    .parse();

  if (argv.writeParityFixture) {
    const ref = writeParityFixture(PARITY_DIR);
    process.stdout.write(`parity fixture written to ${PARITY_DIR} (PyTorch ${ref.torch}, ${ref.computed_in}): loss ${ref.loss.toFixed(6)}, gradient norm ${ref.grad_norm.toFixed(4)}, clip scale ${ref.clip_scale.toFixed(4)}\n`);
    return;
  }
  const summary = await runBench({
    backend: argv.backend,
    gpu: argv.gpu,
    preset: argv.preset,
    batch: argv.batch,
    steps: argv.steps,
    repeats: argv.repeats,
    warmup: argv.warmup,
    reference: argv.reference ?? null,
    torchThreads: argv.torchThreads,
    out: argv.save ? argv.out : null,
    data: argv.data ?? null,
    seed: argv.seed,
    profile: argv.profile,
    precision: argv.precision,
    maxIsa: argv.maxIsa ?? null,
  });
  process.stdout.write(`${formatBenchTable(summary.rows)}\n`);
  for (const r of summary.rows.filter((row) => row.engine === 'tfjs' && row.ratio_vs_reference !== null)) {
    process.stdout.write(`tfjs ${r.precision}/torch tokens/s: median ${Number(r.ratio_vs_reference).toFixed(2)}x, range ${Number(r.ratio_min).toFixed(2)}-${Number(r.ratio_max).toFixed(2)}; forward ${Number(r.forward_ratio_vs_reference).toFixed(2)}x\n`);
  }
  if (summary.bf16Ratios.length) process.stdout.write(`bf16/fp32 tokens/s per round: ${summary.bf16Ratios.map((x) => x.toFixed(2)).join(', ')}\n`);
  if (argv.save) process.stderr.write(`appended ${summary.rows.length} row(s) to ${argv.out}/bench.arrow; this run's summary in ${argv.out}/bench.md\n`);
});
