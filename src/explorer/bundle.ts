/**
 * Bundling the browser code (src/explorer/browser/) with esbuild, in memory. The bundles import
 * the project's own model code (GPT, scoring, sampling, trainer, vocabulary) unchanged:
 * - `@tensorflow/tfjs` is the global `tf` of tfjs's own browser bundle (served from node_modules
 *   with the WebGPU and wasm backends' bundles, see assets.ts), so every module shares one engine;
 * - `node:crypto` is a small synchronous SHA-256 (the vocabulary hashes its token list);
 * - src/data/arrow.ts (Arrow file I/O) and any Node built-in become modules whose functions throw
 *   when called: some modules the browser code imports also hold file readers it never calls (the
 *   persona probe's site reader), and their own imports (util/fs.ts) run Node APIs at load time.
 */
import { build, type Plugin } from 'esbuild';
import { fileURLToPath } from 'node:url';

const BROWSER_DIR = fileURLToPath(new URL('./browser/', import.meta.url));

export const ENTRY_POINTS = { explorer: `${BROWSER_DIR}app.ts`, bench: `${BROWSER_DIR}bench-page.ts` } as const;
export type EntryName = keyof typeof ENTRY_POINTS;

const NODE_STUB = `
const fail = (name) => () => { throw new Error(name + ' is not available in the browser'); };
module.exports = new Proxy({}, { get: (_, key) => (key === '__esModule' ? false : fail(String(key))) });
`;

const browserShims: Plugin = {
  name: 'persona-browser-shims',
  setup(b) {
    b.onResolve({ filter: /^@tensorflow\/tfjs(-core)?$/ }, () => ({ path: 'tfjs-global', namespace: 'shim' }));
    b.onResolve({ filter: /^(node:)?crypto$/ }, () => ({ path: `${BROWSER_DIR}sha256.ts` }));
    b.onResolve({ filter: /^node:/ }, (a) => ({ path: a.path, namespace: 'node-stub' }));
    b.onResolve({ filter: /\/data\/arrow\.js$/ }, (a) => ({ path: a.path, namespace: 'node-stub' }));
    b.onLoad({ filter: /.*/, namespace: 'shim' }, () => ({ contents: 'module.exports = globalThis.tf;', loader: 'js' }));
    b.onLoad({ filter: /.*/, namespace: 'node-stub' }, () => ({ contents: NODE_STUB, loader: 'js' }));
  },
};

const cache = new Map<EntryName, Promise<string>>();

/** The bundle of one entry point (an ES module), built once per process. */
export function bundle(entry: EntryName): Promise<string> {
  let hit = cache.get(entry);
  if (!hit) {
    hit = build({
      entryPoints: [ENTRY_POINTS[entry]],
      bundle: true,
      write: false,
      format: 'esm',
      platform: 'browser',
      target: 'es2022',
      sourcemap: 'inline',
      logLevel: 'silent',
      plugins: [browserShims],
    }).then((r) => r.outputFiles[0].text);
    hit.catch(() => cache.delete(entry));
    cache.set(entry, hit);
  }
  return hit;
}
