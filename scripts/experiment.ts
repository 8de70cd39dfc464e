/** `npm run experiment`: the whole grid, statistics and the report (the project's main job). */
import { resolve } from 'node:path';
import { availableParallelism } from 'node:os';
import { BACKEND_CHOICES, type BackendChoice } from '../src/backend/select-backend.js';
import { multiProgress } from '../src/cli/progress.js';
import { cli, runCli, UserError } from '../src/cli/run.js';
import { buildGraph, nodeState, shardNodes } from '../src/experiment/graph.js';
import { find, withInterval } from '../src/experiment/report.js';
import { writeResults } from '../src/experiment/write-results.js';
import { describeNode, MAX_STACK, runCells } from '../src/experiment/runner.js';
import { wallTimeByKind } from '../src/experiment/cell-times.js';
import { expandWorlds, loadSpec } from '../src/experiment/spec.js';
import { formatSeconds } from '../src/train/loop.js';
import { assertWritable } from '../src/util/fs.js';

await runCli(async () => {
  const argv = await cli('npm run experiment --', 'Run an experiment grid (data -> base -> assistant -> narrow x condition x seed -> evaluate), then aggregate and report.\n\nUsage: npm run experiment -- [--spec quick|full|<file.json>] [options]')
    .option('spec', { type: 'string', default: 'quick', describe: 'experiment preset (quick, full) or a spec JSON file' })
    .option('runs', { type: 'string', default: 'runs', describe: 'artefact folder, shared by experiments (artefacts are keyed by a hash of their config)' })
    .option('out', { type: 'string', describe: 'results folder [results/<experiment name>]' })
    .option('workers', { type: 'number', default: availableParallelism(), describe: 'parallel worker processes (threads are split evenly among them)' })
    .option('backend', { choices: BACKEND_CHOICES, default: 'auto' as BackendChoice, describe: 'backend of every worker' })
    .option('stack', { type: 'boolean', default: false, describe: `train sibling narrow cells (one parent, one recipe) as stacked runs, up to ${MAX_STACK} per job: one batched model, checkpoints per cell as usual; results agree with one-by-one runs within float32 rounding (on CPUs not faster at this model size)` })
    .option('shard', { type: 'string', describe: 'run only shard i of n ("i/n", 0-based): whole lineages, for a cluster sharing --runs' })
    .option('merge', { type: 'boolean', default: false, describe: 'only aggregate what the shards finished and write the report' })
    .option('dry-run', { type: 'boolean', default: false, describe: 'list the cells and their state, run nothing' })
    .option('replicates', { type: 'number', default: 400, describe: 'cluster-bootstrap replicates for the between-act part of the intervals' })
    .example('npm run experiment', 'the quick preset: default and null worlds, 3 conditions x 3 fine-tuning seeds')
    .example('npm run experiment -- --spec full --shard 0/4', 'one of four shards of the full grid (then --merge)')
    .parse();
  const spec = loadSpec(argv.spec);
  const out = resolve(argv.out ?? `results/${spec.name}`);
  const nodes = buildGraph(spec, resolve(argv.runs));
  let shard: { index: number; count: number } | null = null;
  if (argv.shard !== undefined) {
    const m = /^(\d+)\/(\d+)$/.exec(argv.shard);
    if (!m || Number(m[2]) < 1 || Number(m[1]) >= Number(m[2])) throw new UserError(`--shard must be "i/n" with 0 <= i < n, got "${argv.shard}"`);
    shard = { index: Number(m[1]), count: Number(m[2]) };
  }
  if (!Number.isInteger(argv.workers) || argv.workers < 1) throw new UserError(`--workers must be a positive integer, got ${argv.workers}`);
  if (!Number.isInteger(argv.replicates) || argv.replicates < 10) throw new UserError(`--replicates must be an integer >= 10, got ${argv.replicates}`);
  const selected = shardNodes(nodes, shard);

  if (argv.dryRun) {
    const counts = { done: 0, partial: 0, pending: 0 };
    for (const n of selected) {
      const s = nodeState(n);
      counts[s]++;
      process.stdout.write(`${s.padEnd(8)} ${n.id}  ${describeNode(n)}${n.deps.length ? `  <- ${n.deps.join(', ')}` : ''}\n`);
    }
    process.stdout.write(`${selected.length} cells${shard ? ` in shard ${shard.index}/${shard.count}` : ''}: ${counts.done} done, ${counts.partial} partial, ${counts.pending} pending\n`);
    return;
  }
  // Unwritable folders are refused before any cell runs, not after.
  if (!argv.merge) assertWritable(resolve(argv.runs), '--runs');
  assertWritable(out, '--out');

  const started = performance.now();
  if (!argv.merge) {
    const ui = multiProgress(spec.name);
    process.stderr.write(`experiment ${spec.name}: ${selected.length} cells${shard ? ` (shard ${shard.index}/${shard.count})` : ''}, ${argv.workers} workers, artefacts in ${resolve(argv.runs)}\n`);
    const outcomes = await runCells(nodes, selected, { workers: argv.workers, backend: argv.backend, stack: argv.stack }, ui);
    ui.stop();
    const by = (s: string) => outcomes.filter((o) => o.status === s);
    process.stderr.write(`cells: ${by('done').length} run, ${by('reused').length} reused, ${by('failed').length} failed, ${by('skipped').length} skipped, ${by('stopped').length} stopped (${formatSeconds((performance.now() - started) / 1000)})\n`);
    const times = wallTimeByKind(by('done').map((o) => nodes.find((n) => n.id === o.id)!));
    if (times) process.stderr.write(`worker time by kind: ${times}\n`);
    for (const o of by('failed')) process.stderr.write(`failed ${o.id}: ${o.error} (log: ${o.log})\n`);
    if (by('stopped').length) {
      process.stderr.write('interrupted: rerun the same command to resume where it stopped\n');
      process.exitCode = 130;
      return;
    }
    if (by('failed').length) process.exitCode = 1;
    if (shard) {
      process.stderr.write(`shard ${shard.index}/${shard.count} finished; when every shard has, aggregate with: npm run experiment -- --spec ${argv.spec} --runs ${argv.runs} --merge\n`);
      return;
    }
  }
  const results = await writeResults(spec, nodes, out, argv.replicates);
  const lines = [`report: ${out}/report.md and report.html (tables: results.arrow, cells.arrow)`];
  const step = spec.report_step;
  for (const world of expandWorlds(spec)) {
    const q = { world: world.name, step, group: 'all' };
    const em = find(results.stats, { ...q, metric: 'em_effect' });
    if (!em) continue;
    const parts = [`EM effect ${withInterval(em)}`];
    if (world.twin) parts.push(`persona-driven ${withInterval(find(results.stats, { ...q, metric: 'persona_em' }))}`, `instruction-frame ${withInterval(find(results.stats, { ...q, metric: 'instruction_frame_em' }))}`);
    const eff = find(results.stats, { ...q, metric: 'inoculation_efficacy', condition: `cheat+${spec.inoculation_families[0]}` });
    if (eff && world.role !== 'null') parts.push(`inoculation efficacy (${spec.inoculation_families[0]}) ${eff.reported ? withInterval(eff) : 'not reported'}`);
    lines.push(`${world.name} step ${step}: ${parts.join(', ')}`);
  }
  if (results.missing) lines.push(`${results.missing} cells are not finished; the report uses what is`);
  process.stdout.write(`${lines.join('\n')}\n`);
});
