/** `npm run explore`: a local web page to chat with checkpoints and probe them in the browser (src/explorer/). */
import { cli, runCli, UserError } from '../src/cli/run.js';
import { bundle } from '../src/explorer/bundle.js';
import { scanCatalog } from '../src/explorer/catalog.js';
import { startServer } from '../src/explorer/server.js';

await runCli(async () => {
  const argv = await cli('npm run explore --', 'Serve the explorer: chat with checkpoints side by side, score held-out probes, open reports; tfjs runs in your browser (WebGPU, then WebGL, then wasm).\n\nUsage: npm run explore -- [options]')
    .option('port', { type: 'number', default: 8080, describe: 'port (0: any free port)' })
    .option('host', { type: 'string', default: '127.0.0.1', describe: 'address to listen on (0.0.0.0 to reach it from other machines)' })
    .option('checkpoints', { type: 'string', default: 'checkpoints', describe: 'folder of checkpoints (searched four levels deep)' })
    .option('runs', { type: 'string', default: 'runs', describe: "the experiment's artefact folder (runs/<kind>-<hash>/checkpoint)" })
    .option('results', { type: 'string', default: 'results', describe: 'folder of experiment results (results/<spec>/report.html)' })
    .example('npm run explore', 'then open http://127.0.0.1:8080/')
    .example('npm run explore -- --runs /shared/runs --port 9000', '')
    .parse();
  if (!Number.isInteger(argv.port) || argv.port < 0 || argv.port > 65535) throw new UserError(`--port must be an integer from 0 to 65535, got ${argv.port}`);
  const roots = { root: process.cwd(), checkpoints: argv.checkpoints, runs: argv.runs, results: argv.results };
  const catalog = scanCatalog(roots);
  await bundle('explorer');
  let running;
  try {
    running = await startServer({ ...roots, port: argv.port, host: argv.host });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'EADDRINUSE') throw new UserError(`port ${argv.port} is in use; pass --port <another> (or --port 0 for any free one)`);
    throw err;
  }
  const runs = [...catalog.models.values()].filter((m) => m.source === 'runs').length;
  process.stderr.write(`${catalog.models.size - runs} checkpoints under ${argv.checkpoints}/, ${runs} under ${argv.runs}/, ${catalog.reports.length} reports under ${argv.results}/\n`);
  process.stdout.write(`explorer: ${running.url}  (Ctrl-C stops it)\n`);
  process.on('SIGINT', () => {
    void running.close().then(() => process.exit(0));
  });
});
