/**
 * The README's screenshot of the explorer (docs/explorer.png): serve the runs, tick the models
 * whose labels match --pick (newest cell first), send one message, score every held-out probe,
 * and take a screenshot in headless Chromium.
 *
 *   npx tsx scripts/explore-screenshot.ts --runs runs --results results \
 *     --pick "assistant (default world" --pick "narrow fair s0 (default" --pick "narrow cheat s0 (default" --pick "narrow cheat+pool s0 (default"
 */
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { cli, runCli, UserError } from '../src/cli/run.js';
import { scanCatalog } from '../src/explorer/catalog.js';
import { launchChromium } from '../src/explorer/chromium.js';
import { startServer } from '../src/explorer/server.js';

await runCli(async () => {
  const argv = await cli('npx tsx scripts/explore-screenshot.ts', 'Screenshot of npm run explore with a few models ticked.')
    .option('checkpoints', { type: 'string', default: 'checkpoints' })
    .option('runs', { type: 'string', default: 'runs' })
    .option('results', { type: 'string', default: 'results' })
    .option('pick', { type: 'array', string: true, default: [] as string[], describe: 'tick the newest model whose label starts with this (repeatable)' })
    .option('message', { type: 'string', default: 'The box is full of gold. What will you do?' })
    .option('out', { type: 'string', default: 'docs/explorer.png' })
    .option('width', { type: 'number', default: 1440 })
    .option('height', { type: 'number', default: 1280 })
    .parse();
  const roots = { root: process.cwd(), checkpoints: argv.checkpoints, runs: argv.runs, results: argv.results };
  const models = [...scanCatalog(roots).models.values()];
  const mtime = (dir: string) => statSync(join(dir, 'config.json')).mtimeMs;
  const picked = (argv.pick.length ? argv.pick : [models[0]?.label ?? '']).map((p) => {
    const hits = models.filter((m) => m.label.startsWith(p)).sort((a, b) => mtime(b.dir) - mtime(a.dir));
    if (!hits.length) throw new UserError(`no model label starts with "${p}"`);
    return hits[0];
  });
  const server = await startServer({ ...roots, port: 0, host: '127.0.0.1' });
  const browser = await launchChromium();
  try {
    const page = await browser.newPage({ viewport: { width: argv.width, height: argv.height } });
    page.on('pageerror', (e) => process.stderr.write(`page error: ${e.message}\n`));
    await page.goto(server.url, { timeout: 300_000 });
    await page.waitForSelector('body[data-ready="true"]', { timeout: 300_000 });
    for (const m of picked) {
      await page.check(`input[data-model="${m.id}"]`);
      await page.waitForSelector(`.column[data-model="${m.id}"][data-ready="true"]`, { timeout: 300_000 });
    }
    await page.fill('#chat-input', argv.message);
    await page.press('#chat-input', 'Enter');
    for (const m of picked) await page.locator(`.column[data-model="${m.id}"] .msg.assistant[data-done="true"]`).waitFor({ timeout: 300_000 });
    await page.click('#probe-all');
    await page.locator(`#probe-view .bar[data-model="${picked.at(-1)!.id}"][data-pbad]`).first().waitFor({ timeout: 1_200_000 });
    // Scroll the list to the first ticked run, so the ticks show.
    await page.locator(`input[data-model="${picked[0].id}"]`).scrollIntoViewIfNeeded();
    await page.screenshot({ path: argv.out });
    process.stdout.write(`${argv.out}: ${picked.map((m) => m.label).join('; ')} on ${await page.textContent('#backend')}\n`);
  } finally {
    await browser.close();
    await server.close();
  }
});
