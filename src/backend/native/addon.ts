/**
 * Guarded loader for the native backend's Node-API addon (native/build/Release/persona_native.node,
 * built by native/build.mjs from native/src). Never throws: when the addon is unavailable, `addon`
 * is null and `reason` says why.
 *
 * Environment:
 * - PERSONA_NATIVE_DISABLE=1: behave as if the addon were not built.
 * - PERSONA_NATIVE_ADDON=/path/to/persona_native.node: load that file instead.
 * - OMP_WAIT_POLICY / GOMP_SPINCOUNT / OMP_NUM_THREADS: OpenMP settings, read once when the addon
 *   (and so libgomp) is first loaded. Defaults set here if unset: see OMP_DEFAULTS.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ADDON_SIGNATURES, type NativeAddon } from './contracts.js';

export type { GemmEngine, NativeAddon, NativeAddonInfo } from './contracts.js';

export interface NativeAddonLoad {
  addon: NativeAddon | null;
  /** Empty when loaded; otherwise why the addon is unavailable. */
  reason: string;
  /** The file loaded or looked for. */
  path: string;
}

/**
 * OpenMP defaults applied before the addon loads (only where the variable is unset).
 * Passive waiting: the idle OpenMP worker sleeps between kernels. Measured with the simulated step
 * of native/bench-kernels.ts on the 2-core VM: on an idle machine libgomp's default (spin, then
 * sleep; `OMP_WAIT_POLICY=` empty) was 5-10% faster (70-81 ms vs 76-86 ms per step), but whenever
 * another process used a core it collapsed to 170-1400 ms per step while passive stayed at 120-140
 * ms; `active` behaved like the default. Set OMP_WAIT_POLICY yourself to override.
 */
export const OMP_DEFAULTS: Record<string, string> = {
  OMP_WAIT_POLICY: 'passive',
  // OpenBLAS (pthreads build) workers otherwise spin ~2^28 cycles after each call.
  OPENBLAS_THREAD_TIMEOUT: '4',
};

export const NATIVE_ADDON_PATH = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'native', 'build', 'Release', 'persona_native.node',
);

let loaded: NativeAddonLoad | null = null;

export function loadNativeAddon(): NativeAddonLoad {
  if (loaded) return loaded;
  const file = process.env.PERSONA_NATIVE_ADDON || NATIVE_ADDON_PATH;
  if (process.env.PERSONA_NATIVE_DISABLE === '1') {
    loaded = { addon: null, reason: 'disabled by PERSONA_NATIVE_DISABLE=1', path: file };
    return loaded;
  }
  if (!existsSync(file)) {
    loaded = {
      addon: null,
      reason: `native addon not built (${path.relative(process.cwd(), file) || file} missing): run \`node native/build.mjs\` ` +
        '(needs g++ and libdnnl-dev or libopenblas-dev: `sudo apt-get install libdnnl-dev libopenblas-dev`)',
      path: file,
    };
    return loaded;
  }
  for (const [k, v] of Object.entries(OMP_DEFAULTS)) if (process.env[k] === undefined) process.env[k] = v;
  try {
    const require = createRequire(import.meta.url);
    const addon = require(file) as NativeAddon;
    const mismatch = contractMismatch(addon);
    if (mismatch) {
      loaded = { addon: null, reason: `native addon out of date (${mismatch}): rebuild it with \`npm run build:native\``, path: file };
      return loaded;
    }
    addon.info();
    loaded = { addon, reason: '', path: file };
  } catch (e) {
    const msg = e instanceof Error ? e.message.split('\n')[0] : String(e);
    loaded = { addon: null, reason: `native addon failed to load: ${msg}`, path: file };
  }
  return loaded;
}

/**
 * Why a loaded addon does not fit this code's contracts (src/backend/native/contracts.ts), or ''
 * when it does: an addon built from older sources may take its arguments in another order.
 */
export function contractMismatch(addon: unknown): string {
  const a = addon as Partial<Record<keyof NativeAddon, unknown>>;
  if (typeof a.signatures !== 'function') return 'it reports no signatures()';
  const have = (a.signatures as () => Record<string, string[]>)();
  for (const [name, args] of Object.entries(ADDON_SIGNATURES)) {
    const got = have[name];
    if (!got || typeof a[name as keyof NativeAddon] !== 'function') return `it lacks ${name}()`;
    if (got.join(',') !== args.join(',')) return `${name}(${got.join(', ')}) where this code calls ${name}(${args.join(', ')})`;
  }
  return '';
}
