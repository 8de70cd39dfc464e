// Finds oneDNN, OpenBLAS and OpenMP for binding.gyp and build.mjs.
// `node detect.mjs <key>` prints one value for gyp's `<!(...)`; `node detect.mjs --json` prints all.
// Environment overrides: PERSONA_NATIVE_DNNL=0 / PERSONA_NATIVE_BLAS=0 disable a library;
// PERSONA_NATIVE_MARCH sets -march (default: native on x86-64, none elsewhere).
import { existsSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import os from 'node:os';

const platform = os.platform();
const arch = os.arch();
const multiarch = { x64: 'x86_64-linux-gnu', arm64: 'aarch64-linux-gnu' }[arch] ?? '';

function brewPrefix(pkg) {
  for (const root of ['/opt/homebrew/opt', '/usr/local/opt']) {
    const p = path.join(root, pkg);
    if (existsSync(p)) return p;
  }
  return null;
}

function firstDir(dirs, file) {
  for (const d of dirs) if (d && existsSync(path.join(d, file))) return d;
  return null;
}

const libExt = platform === 'darwin' ? 'dylib' : 'so';
const sysInc = ['/usr/include', '/usr/local/include', '/opt/homebrew/include'];
const sysLib = [
  multiarch && `/usr/lib/${multiarch}`, '/usr/lib64', '/usr/lib', '/usr/local/lib', '/usr/local/lib64',
  '/opt/homebrew/lib',
];

function findDnnl() {
  if (process.env.PERSONA_NATIVE_DNNL === '0') return null;
  const brew = brewPrefix('onednn');
  const inc = firstDir([brew && `${brew}/include`, ...sysInc], 'dnnl.hpp');
  const lib = firstDir([brew && `${brew}/lib`, ...sysLib], `libdnnl.${libExt}`);
  return inc && lib ? { inc, lib } : null;
}

function findBlas() {
  if (process.env.PERSONA_NATIVE_BLAS === '0') return null;
  const brew = brewPrefix('openblas');
  const incDirs = [
    brew && `${brew}/include`,
    multiarch && `/usr/include/${multiarch}/openblas-pthread`,
    multiarch && `/usr/include/${multiarch}/openblas-openmp`,
    multiarch && `/usr/include/${multiarch}/openblas-serial`,
    '/usr/include/openblas', '/usr/local/include/openblas', '/opt/homebrew/include/openblas',
    multiarch && `/usr/include/${multiarch}`, ...sysInc,
  ];
  const inc = firstDir(incDirs, 'cblas.h');
  const lib = firstDir([brew && `${brew}/lib`, ...sysLib], `libopenblas.${libExt}`);
  return inc && lib ? { inc, lib } : null;
}

function findOmp() {
  if (platform !== 'darwin') return { cflags: ['-fopenmp'], ldflags: ['-fopenmp'] };
  const brew = brewPrefix('libomp');
  if (!brew) return { cflags: [], ldflags: [] };
  return {
    cflags: ['-Xpreprocessor', '-fopenmp', `-I${brew}/include`],
    ldflags: [`-L${brew}/lib`, '-lomp', `-Wl,-rpath,${brew}/lib`],
  };
}

function compilerFound() {
  const cxx = process.env.CXX || (platform === 'darwin' ? 'clang++' : 'g++');
  try {
    execFileSync(cxx, ['--version'], { stdio: 'ignore' });
    return cxx;
  } catch {
    return null;
  }
}

export function detect() {
  const dnnl = findDnnl();
  const blas = findBlas();
  const omp = findOmp();
  let march = process.env.PERSONA_NATIVE_MARCH ?? (arch === 'x64' ? 'native' : '');
  const cflags = ['-O3', '-std=c++17', '-fexceptions', '-fno-math-errno', '-fno-trapping-math', ...omp.cflags];
  if (march) cflags.push(`-march=${march}`);
  const defines = [];
  const includes = [];
  const libs = [...omp.ldflags];
  for (const [found, lib, def] of /** @type {const} */ ([
    [dnnl, 'dnnl', 'PN_HAVE_DNNL'],
    [blas, 'openblas', 'PN_HAVE_BLAS'],
  ])) {
    if (!found) continue;
    defines.push(def);
    // Default system include dirs must not be passed with -I (it breaks libstdc++'s #include_next).
    if (!['/usr/include', '/usr/local/include'].includes(found.inc) && !includes.includes(found.inc)) {
      includes.push(found.inc);
    }
    if (!libs.includes(`-L${found.lib}`)) libs.push(`-L${found.lib}`);
    libs.push(`-l${lib}`);
    if (platform === 'darwin') libs.push(`-Wl,-rpath,${found.lib}`);
  }
  return { dnnl, blas, openmp: omp.cflags.length > 0, compiler: compilerFound(), cflags, defines, includes, libs };
}

const isMain = process.argv[1] && path.resolve(process.argv[1]) === path.resolve(new URL(import.meta.url).pathname);
if (isMain) {
  const d = detect();
  const key = process.argv[2];
  const out = {
    '--json': JSON.stringify(d),
    cflags: d.cflags.join(' '),
    defines: d.defines.join(' '),
    includes: d.includes.join(' '),
    libs: d.libs.join(' '),
  }[key ?? '--json'];
  process.stdout.write(out ?? '');
}
