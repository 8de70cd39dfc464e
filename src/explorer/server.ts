/**
 * The explorer's local web server (node:http): the page, its bundle, tfjs's browser bundles and
 * wasm binaries from node_modules (nothing from the network), the checkpoints' files, held-out
 * probes read by the project's loader, and the experiment reports. Only files of listed
 * checkpoints and of the results folder are served.
 */
import { createReadStream, existsSync, readFileSync, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { dirname, extname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { assistantSites } from '../eval/persona-probe.js';
import { loadProbes } from '../eval/probe-records.js';
import { Vocabulary } from '../tokenizer/vocab.js';
import { bundle, type EntryName } from './bundle.js';
import { indexJson, scanCatalog, type Catalog, type CatalogRoots } from './catalog.js';
import type { ProbesJson } from './protocol.js';

const require = createRequire(import.meta.url);
const STATIC_DIR = fileURLToPath(new URL('./static/', import.meta.url));

/** tfjs's browser bundles and wasm binaries, by the name the page asks for. */
export function vendorFiles(): Map<string, string> {
  const dist = (pkg: string) => dirname(require.resolve(pkg));
  const tf = dist('@tensorflow/tfjs');
  const wasm = dist('@tensorflow/tfjs-backend-wasm');
  const files = new Map<string, string>([
    ['tf.min.js', join(tf, 'tf.min.js')],
    ['tf-backend-wasm.min.js', join(wasm, 'tf-backend-wasm.min.js')],
    ['tfjs-backend-wasm.wasm', join(wasm, 'tfjs-backend-wasm.wasm')],
    ['tfjs-backend-wasm-simd.wasm', join(wasm, 'tfjs-backend-wasm-simd.wasm')],
    ['tfjs-backend-wasm-threaded-simd.wasm', join(wasm, 'tfjs-backend-wasm-threaded-simd.wasm')],
  ]);
  try {
    files.set('tf-backend-webgpu.min.js', join(dist('@tensorflow/tfjs-backend-webgpu'), 'tf-backend-webgpu.min.js'));
  } catch {
    // Not installed: the page goes on with WebGL and wasm.
  }
  return files;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8', '.json': 'application/json',
  '.wasm': 'application/wasm', '.svg': 'image/svg+xml', '.png': 'image/png', '.md': 'text/markdown; charset=utf-8', '.bin': 'application/octet-stream',
  '.arrow': 'application/vnd.apache.arrow.file',
};

export type Route = (req: IncomingMessage, res: ServerResponse, path: string) => boolean | Promise<boolean>;

export interface ServerOptions extends CatalogRoots {
  port: number;
  host: string;
  /** Extra routes tried first (the browser benchmark's inputs). */
  routes?: Route[];
}

export interface RunningServer {
  server: Server;
  url: string;
  close(): Promise<void>;
}

export function send(res: ServerResponse, status: number, body: string | Uint8Array, type = 'text/plain; charset=utf-8'): void {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
  res.end(body);
}

export function sendFile(res: ServerResponse, file: string): void {
  const st = statSync(file, { throwIfNoEntry: false });
  if (!st?.isFile()) return send(res, 404, `not found: ${file}`);
  res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream', 'content-length': st.size, 'cache-control': 'no-store' });
  createReadStream(file).pipe(res);
}

/** A file under `dir`, or null when `rel` would leave it. */
function inside(dir: string, rel: string): string | null {
  const p = resolve(dir, `.${sep}${rel}`);
  return p === dir || p.startsWith(dir + sep) ? p : null;
}

const CHECKPOINT_FILES = new Set(['config.json', 'vocab.json', 'model.json', 'weights.bin']);

/** Serve the page and the static assets every page shares (the bundles, tfjs's vendor files). */
export async function serveCommon(res: ServerResponse, path: string): Promise<boolean> {
  const page = /^\/(?:([a-z]+)\.html)?$/.exec(path);
  if (page) {
    const file = join(STATIC_DIR, `${page[1] ?? 'explorer'}.html`);
    if (!existsSync(file)) return false;
    send(res, 200, readFileSync(file), TYPES['.html']);
    return true;
  }
  if (path === '/favicon.ico') {
    res.writeHead(204).end();
    return true;
  }
  if (path === '/explorer.css') {
    send(res, 200, readFileSync(join(STATIC_DIR, 'explorer.css')), TYPES['.css']);
    return true;
  }
  const js = /^\/(explorer|bench)\.js$/.exec(path);
  if (js) {
    send(res, 200, await bundle(js[1] as EntryName), TYPES['.js']);
    return true;
  }
  if (path.startsWith('/vendor/')) {
    const file = vendorFiles().get(path.slice('/vendor/'.length));
    if (!file) send(res, 404, `not a vendor file: ${path}`);
    else sendFile(res, file);
    return true;
  }
  return false;
}

export async function startServer(o: ServerOptions): Promise<RunningServer> {
  const root = resolve(o.root);
  const results = resolve(root, o.results);
  let catalog: Catalog = scanCatalog(o);
  const probeCache = new Map<string, { mtime: number; json: string }>();

  const probesJson = (dataDir: string, vocab: Vocabulary): string => {
    const file = join(dataDir, 'probes.arrow');
    const mtime = statSync(file).mtimeMs;
    const hit = probeCache.get(file);
    if (hit && hit.mtime === mtime) return hit.json;
    const probes = loadProbes(file, vocab).filter((p) => p.kind === 'broad' || p.kind === 'narrow');
    const body: ProbesJson = {
      source: file,
      probes: probes.map((p) => ({
        id: p.id, kind: p.kind, group: p.group, domain: p.domain, variant: p.variant, subject: p.subject, text: p.text,
        context: Array.from(p.context), good: Array.from(p.good), bad: Array.from(p.bad), goodText: p.goodText, badText: p.badText,
      })),
      neutral: assistantSites(vocab).map((s) => Array.from(s.tokens)),
    };
    const json = JSON.stringify(body);
    probeCache.set(file, { mtime, json });
    return json;
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const path = decodeURIComponent(url.pathname);
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, 'GET only');
    for (const route of o.routes ?? []) if (await route(req, res, url.pathname)) return;
    if (await serveCommon(res, path)) return;
    if (path === '/api/index') {
      catalog = scanCatalog(o);
      return send(res, 200, JSON.stringify(indexJson(catalog, o)), TYPES['.json']);
    }
    const api = /^\/api\/models\/([^/]+)\/([a-z-]+\.(?:json|bin))$/.exec(url.pathname);
    if (api) {
      const m = catalog.models.get(api[1]);
      if (!m) return send(res, 404, `no listed checkpoint ${decodeURIComponent(api[1])} (reload the page to rescan)`);
      const file = api[2];
      if (CHECKPOINT_FILES.has(file)) return sendFile(res, join(m.dir, file));
      if (file === 'persona-probe.json') return m.personaProbePath ? sendFile(res, m.personaProbePath) : send(res, 404, 'no probe.json for this lineage (only experiment runs have one)');
      if (file === 'probes.json') {
        if (!m.data || !m.probes) return send(res, 404, `the checkpoint's data folder (${m.data ?? 'unknown'}) has no probes.arrow`);
        const vocab = Vocabulary.fromJson(JSON.parse(readFileSync(join(m.dir, 'vocab.json'), 'utf8')), join(m.dir, 'vocab.json'));
        return send(res, 200, probesJson(m.data, vocab), TYPES['.json']);
      }
      return send(res, 404, `unknown file ${file}`);
    }
    if (path.startsWith('/results/')) {
      const file = inside(results, path.slice('/results/'.length));
      return file ? sendFile(res, file) : send(res, 403, 'outside the results folder');
    }
    send(res, 404, `not found: ${path}`);
  };

  return listen(handle, o.port, o.host);
}

/** A server for a page of this folder's static/ (the benchmark's) with its own routes: 127.0.0.1, any free port. */
export function startPageServer(routes: Route[]): Promise<RunningServer> {
  return listen(async (req, res) => {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    for (const route of routes) if (await route(req, res, path)) return;
    if (!(await serveCommon(res, path))) send(res, 404, `not found: ${path}`);
  }, 0, '127.0.0.1');
}

async function listen(handle: (req: IncomingMessage, res: ServerResponse) => Promise<void>, port: number, hostName: string): Promise<RunningServer> {
  const server = createServer((req, res) => {
    // Cross-origin isolation lets tfjs's wasm backend use threads; every resource is same-origin.
    res.setHeader('cross-origin-opener-policy', 'same-origin');
    res.setHeader('cross-origin-embedder-policy', 'require-corp');
    handle(req, res).catch((err: Error) => {
      if (!res.headersSent) send(res, 500, err.message);
      else res.end();
    });
  });
  await new Promise<void>((ok, fail) => {
    server.once('error', fail);
    server.listen(port, hostName, () => ok());
  });
  const addr = server.address() as AddressInfo;
  const host = hostName === '0.0.0.0' || hostName === '::' ? 'localhost' : hostName.includes(':') ? `[${hostName}]` : hostName;
  return {
    server,
    url: `http://${host}:${addr.port}/`,
    close: () => new Promise<void>((ok) => {
      server.closeAllConnections();
      server.close(() => ok());
    }),
  };
}
