/**
 * The tfjs backend in the browser: WebGPU, then WebGL, then wasm (or one named backend), each
 * from tfjs's own bundles served out of node_modules. Returns what runs and on which device.
 */
import * as tf from '@tensorflow/tfjs';
import type { RuntimeInfo } from '../protocol.js';

export const BROWSER_BACKEND_ORDER = ['webgpu', 'webgl', 'wasm'] as const;
export type BrowserBackend = (typeof BROWSER_BACKEND_ORDER)[number] | 'cpu';

interface TfGlobal {
  wasm?: { setWasmPaths(prefix: string): void };
}

async function webgpuDevice(): Promise<string> {
  const gpu = (navigator as unknown as { gpu?: { requestAdapter(): Promise<{ info?: Record<string, string> } | null> } }).gpu;
  const adapter = await gpu?.requestAdapter();
  const info = adapter?.info ?? {};
  return ['vendor', 'architecture', 'device', 'description'].map((k) => info[k]).filter(Boolean).join(' ') || 'WebGPU adapter';
}

function webglDevice(): string {
  const gl = (tf.backend() as unknown as { gpgpu?: { gl: WebGLRenderingContext } }).gpgpu?.gl;
  if (!gl) return 'WebGL';
  const ext = gl.getExtension('WEBGL_debug_renderer_info');
  return String(gl.getParameter(ext ? ext.UNMASKED_RENDERER_WEBGL : gl.RENDERER));
}

/** Start the first backend of `order` that works. `wasmPrefix` is where the .wasm binaries are served. */
export async function startRuntime(order: readonly BrowserBackend[] = BROWSER_BACKEND_ORDER, wasmPrefix = '/vendor/'): Promise<RuntimeInfo> {
  const skipped: string[] = [];
  for (const name of order) {
    try {
      if (name === 'wasm') (globalThis as unknown as { tf: TfGlobal }).tf.wasm?.setWasmPaths(wasmPrefix);
      if (!tf.findBackend(name) && !tf.engine().registryFactory[name]) throw new Error('not registered (its bundle did not load, or the browser lacks it)');
      if (!(await tf.setBackend(name))) throw new Error('failed to initialise');
      await tf.ready();
      if (tf.getBackend() !== name) throw new Error(`tfjs chose ${tf.getBackend()}`);
      const device = name === 'webgpu' ? await webgpuDevice() : name === 'webgl' ? webglDevice() : `CPU (${name})`;
      return { backend: name, device, skipped };
    } catch (err) {
      skipped.push(`${name}: ${(err as Error).message}`);
    }
  }
  throw new Error(`no tfjs backend started (${skipped.join('; ')})`);
}
