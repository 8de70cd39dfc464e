/** The native addon loader degrades cleanly: a reason instead of an exception, and tests that skip. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { loadNativeAddon } from '../src/backend/native/addon.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

function runChild(env: Record<string, string>, args: string[]) {
  const childEnv: NodeJS.ProcessEnv = { ...process.env, ...env };
  delete childEnv.NODE_TEST_CONTEXT; // let the child's test runner report on its own stdout
  return spawnSync(process.execPath, args, { cwd: root, encoding: 'utf8', env: childEnv, timeout: 60_000 });
}

test('loadNativeAddon never throws and explains itself', () => {
  const r = loadNativeAddon();
  assert.ok(r.addon != null || r.reason.length > 0);
  if (r.addon) {
    const info = r.addon.info();
    assert.ok(info.dnnl || info.blas, 'built with oneDNN or OpenBLAS');
    assert.ok(info.threads >= 1);
  }
});

test('without the addon: registerNativeBackend() is false with a reason', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'native-loader-'));
  try {
    const script = path.join(dir, 'probe.ts');
    const backend = pathToFileURL(path.join(root, 'src/backend/native/native-backend.ts')).href;
    writeFileSync(script, `import { registerNativeBackend, nativeBackendStatus } from ${JSON.stringify(backend)};
console.log(JSON.stringify({ ok: registerNativeBackend(), reason: nativeBackendStatus().reason }));\n`);
    const envs: Record<string, string>[] = [{ PERSONA_NATIVE_ADDON: path.join(dir, 'missing.node') }, { PERSONA_NATIVE_DISABLE: '1' }];
    for (const env of envs) {
      const r = runChild(env, ['--import', 'tsx', script]);
      assert.equal(r.status, 0, r.stderr);
      const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
      assert.equal(out.ok, false);
      assert.match(out.reason, env.PERSONA_NATIVE_DISABLE ? /disabled/ : /not built/);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('without the addon the native tests skip with the reason', () => {
  const r = runChild({ PERSONA_NATIVE_DISABLE: '1' },
    ['--import', 'tsx', '--test', '--test-reporter=tap', 'test/native-kernels.test.ts']);
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /# SKIP native backend unavailable: disabled/);
  assert.match(r.stdout, /# fail 0/);
});
