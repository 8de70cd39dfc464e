/**
 * The native sources build against oneDNN 2.x and 3.x: gemm.cc's version guard is compiled in both
 * branches (syntax only) against test/fixtures/onednn-api/dnnl.hpp, a declarations-only stand-in
 * for each version's API, so the check runs whichever oneDNN (if any) is installed. Needs a C++
 * compiler (skipped without one).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const cxx = process.env.CXX || (process.platform === 'darwin' ? 'clang++' : 'g++');
const noCompiler = spawnSync(cxx, ['--version']).status === 0 ? false : `no C++ compiler (${cxx})`;

function compile(major: number) {
  return spawnSync(cxx, ['-std=c++17', '-fsyntax-only', '-DPN_HAVE_DNNL', `-DSTUB_DNNL_MAJOR=${major}`,
    `-I${path.join(root, 'test/fixtures/onednn-api')}`, path.join(root, 'native/src/gemm.cc')], { encoding: 'utf8', timeout: 120_000 });
}

for (const major of [2, 3]) {
  test(`native/src/gemm.cc compiles against the oneDNN ${major}.x API`, { skip: noCompiler }, () => {
    const r = compile(major);
    assert.equal(r.status, 0, r.stderr);
  });
}
