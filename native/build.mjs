#!/usr/bin/env node
// Builds the native backend's Node-API addon (native/build/Release/persona_native.node).
// Run by the package's `install` script. Never fails the install: when the compiler or the
// libraries are missing, or the build fails, it prints one notice line and exits 0 (set
// PERSONA_NATIVE_REQUIRED=1 to exit 1 instead, e.g. in CI). PERSONA_NATIVE_SKIP=1 skips the build.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync, accessSync, constants } from 'node:fs';
import path from 'node:path';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { detect } from './detect.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');
const required = process.env.PERSONA_NATIVE_REQUIRED === '1';
const verbose = process.env.PERSONA_NATIVE_VERBOSE === '1';
const install =
  os.platform() === 'darwin'
    ? 'brew install onednn openblas libomp'
    : 'sudo apt-get install g++ make python3 libdnnl-dev libopenblas-dev';

function notice(msg) {
  console.log(`persona native backend: ${msg}`);
  process.exit(required ? 1 : 0);
}

if (process.env.PERSONA_NATIVE_SKIP === '1') notice('build skipped (PERSONA_NATIVE_SKIP=1); the native backend is unavailable');

const d = detect();
if (!d.compiler) {
  notice(`not built: no C++ compiler found (install one with \`${install}\`); the native backend is unavailable, other backends still work`);
}
if (!d.dnnl && !d.blas) {
  notice(`not built: neither oneDNN nor OpenBLAS found (install with \`${install}\`); the native backend is unavailable, other backends still work`);
}

function onPath(name) {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const p = path.join(dir, name);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {}
  }
  return null;
}

// node-gyp: npm's bundled one (on PATH during lifecycle scripts, or npm_config_node_gyp), else ours.
let cmd, args;
const gypJs = process.env.npm_config_node_gyp;
const gypPath = onPath(os.platform() === 'win32' ? 'node-gyp.cmd' : 'node-gyp');
const local = path.join(root, 'node_modules', '.bin', 'node-gyp');
if (gypPath) [cmd, args] = [gypPath, []];
else if (gypJs && existsSync(gypJs)) [cmd, args] = [process.execPath, [gypJs]];
else if (existsSync(local)) [cmd, args] = [local, []];
else notice('not built: node-gyp not found (run `npm install` to get it); the native backend is unavailable');

args.push('rebuild', '--release');
// Use the headers installed next to this node (e.g. /usr/include/node) instead of downloading them.
const prefix = path.resolve(path.dirname(process.execPath), '..');
if (!process.env.npm_config_nodedir && existsSync(path.join(prefix, 'include', 'node', 'node_api.h')) &&
    existsSync(path.join(prefix, 'include', 'node', 'common.gypi'))) {
  args.push(`--nodedir=${prefix}`);
}
const jobs = String(Math.max(1, os.cpus().length));
args.push('-j', jobs);

const t0 = Date.now();
const r = spawnSync(cmd, args, { cwd: here, encoding: 'utf8', env: process.env, maxBuffer: 64 << 20 });
const log = `$ ${cmd} ${args.join(' ')}\n${r.stdout ?? ''}\n${r.stderr ?? ''}\n${r.error ?? ''}`;
mkdirSync(path.join(here, 'build'), { recursive: true });
const logFile = path.join(here, 'build', 'build.log');
writeFileSync(logFile, log);
if (verbose) console.log(log);
if (r.status !== 0) {
  const hint = /dnnl|cblas|openblas/i.test(log) && /No such file|cannot find|not found/i.test(log)
    ? ` (a library looks missing: \`${install}\`)`
    : /gyp ERR!.*(download|ENOTFOUND|EAI_AGAIN|getaddrinfo)/i.test(log)
      ? ' (node-gyp could not fetch the node headers: install them or set npm_config_nodedir)'
      : '';
  notice(`build failed${hint}; see ${path.relative(root, logFile)}; the native backend is unavailable, other backends still work`);
}

// Smoke test: load it in a child process (a missing shared library shows up only here).
const addonPath = path.join(here, 'build', 'Release', 'persona_native.node');
const probe = spawnSync(process.execPath, ['-e', `console.log(JSON.stringify(require(${JSON.stringify(addonPath)}).info()))`], {
  encoding: 'utf8',
});
if (probe.status !== 0) {
  writeFileSync(logFile, `${log}\n--- load test ---\n${probe.stdout}\n${probe.stderr}`);
  notice(`built but it does not load; see ${path.relative(root, logFile)}; the native backend is unavailable`);
}
const libs = [d.dnnl && 'oneDNN', d.blas && 'OpenBLAS'].filter(Boolean).join(' + ');
console.log(`persona native backend: built with ${libs}${d.openmp ? ', OpenMP' : ''} in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
