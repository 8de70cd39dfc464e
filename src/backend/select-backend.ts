/**
 * Backend choice. The model is written once against the tfjs API; this picks what runs it:
 * `auto` = tfjs-node ('tensorflow') if it loads, else the project's native addon ('native'),
 * else '@tensorflow/tfjs-backend-wasm', else the pure-JS 'cpu'. Every command prints the result
 * and why.
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-cpu';
import { createRequire } from 'node:module';
import util from 'node:util';
import { nativeBackendStatus, registerNativeBackend } from './native/native-backend.js';

export const BACKEND_CHOICES = ['auto', 'tensorflow', 'native', 'wasm', 'cpu'] as const;
export type BackendChoice = (typeof BACKEND_CHOICES)[number];

export interface BackendInfo {
  name: string;
  reason: string;
}

const require = createRequire(import.meta.url);

function installed(pkg: string): boolean {
  try {
    require.resolve(`${pkg}/package.json`);
    return true;
  } catch {
    return false;
  }
}

/** tfjs-node 4.22 calls util.isNullOrUndefined, which Node 23 removed; put it back before loading. */
function patchNodeUtil(): void {
  const u = util as unknown as Record<string, unknown>;
  if (typeof u.isNullOrUndefined !== 'function') u.isNullOrUndefined = (x: unknown) => x === null || x === undefined;
}

/** Load tfjs-node (or -gpu). Returns why it failed, or null when the 'tensorflow' backend is registered. */
async function loadTfjsNode(gpu: boolean): Promise<string | null> {
  const pkg = gpu ? '@tensorflow/tfjs-node-gpu' : '@tensorflow/tfjs-node';
  if (!installed(pkg)) {
    return gpu
      ? `${pkg} is not installed (npm install ${pkg}; it needs Linux x86-64 with CUDA and downloads libtensorflow at install time)`
      : `${pkg} is not installed (its install script downloads libtensorflow, which needs internet)`;
  }
  patchNodeUtil();
  try {
    await import(pkg);
  } catch (err) {
    return `${pkg} failed to load: ${(err as Error).message.split('\n')[0]}`;
  }
  return tf.findBackend('tensorflow') ? null : `${pkg} loaded but registered no 'tensorflow' backend`;
}

async function loadWasm(): Promise<string | null> {
  try {
    await import('@tensorflow/tfjs-backend-wasm');
    return null;
  } catch (err) {
    return `@tensorflow/tfjs-backend-wasm failed to load: ${(err as Error).message.split('\n')[0]}`;
  }
}

async function activate(name: string): Promise<boolean> {
  const ok = await tf.setBackend(name);
  await tf.ready();
  if (ok && name === 'cpu') {
    // Silence tfjs's "install tfjs-node" banner: the backend line below already says what runs.
    (tf.backend() as unknown as { firstUse: boolean }).firstUse = false;
  }
  return ok && tf.getBackend() === name;
}

/**
 * Select and initialise a backend. `gpu` asks for tfjs-node-gpu and fails plainly when it is not
 * installed. An explicit choice that cannot load is an error naming the reason and the fix.
 */
export async function selectBackend(choice: BackendChoice = 'auto', gpu = false): Promise<BackendInfo> {
  if (!BACKEND_CHOICES.includes(choice)) {
    throw new Error(`unknown backend "${choice}"; choose one of ${BACKEND_CHOICES.join(', ')}`);
  }
  if (gpu) {
    if (choice !== 'auto' && choice !== 'tensorflow') throw new Error(`--gpu runs on tfjs-node-gpu; it cannot be combined with --backend ${choice}`);
    const why = await loadTfjsNode(true);
    if (why) throw new Error(`--gpu: ${why}`);
    await activate('tensorflow');
    return { name: 'tensorflow', reason: 'GPU via @tensorflow/tfjs-node-gpu (--gpu)' };
  }
  const skipped: string[] = [];
  if (choice === 'auto' || choice === 'tensorflow') {
    const why = await loadTfjsNode(false);
    if (!why && (await activate('tensorflow'))) return { name: 'tensorflow', reason: choice === 'auto' ? 'auto: @tensorflow/tfjs-node loaded' : 'requested' };
    if (choice === 'tensorflow') throw new Error(`--backend tensorflow: ${why ?? 'could not activate'}; use --backend auto to fall back`);
    skipped.push(why ?? 'tfjs-node could not activate');
  }
  if (choice === 'auto' || choice === 'native') {
    const status = nativeBackendStatus();
    if (status.available && registerNativeBackend() && (await activate('native'))) {
      const libs = [status.info?.dnnl ? 'oneDNN' : '', status.info?.blas ? 'OpenBLAS' : ''].filter(Boolean).join('+') || 'plain loops';
      const detail = `native addon (${libs}, ${status.info?.threads} threads)`;
      return { name: 'native', reason: choice === 'auto' ? `auto: ${skipped.join('; ')}; using the ${detail}` : `requested: ${detail}` };
    }
    if (choice === 'native') throw new Error(`--backend native: ${status.reason}; use --backend auto to fall back`);
    skipped.push(`native addon unavailable (${status.reason})`);
  }
  if (choice === 'auto' || choice === 'wasm') {
    const why = await loadWasm();
    if (!why && (await activate('wasm'))) return { name: 'wasm', reason: choice === 'auto' ? `auto: ${skipped.join('; ')}` : 'requested' };
    if (choice === 'wasm') throw new Error(`--backend wasm: ${why ?? 'could not activate'}`);
    skipped.push(why ?? 'wasm could not activate');
  }
  await activate('cpu');
  return { name: 'cpu', reason: choice === 'auto' ? `auto: ${skipped.join('; ')}` : 'requested (pure JavaScript, slow)' };
}

export function describeBackend(info: BackendInfo): string {
  return `backend: ${info.name} (${info.reason})`;
}
