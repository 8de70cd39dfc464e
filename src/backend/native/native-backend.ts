/**
 * The 'native' tfjs backend: tfjs-backend-cpu's storage (Float32Array values in `backend.data`)
 * and every cpu kernel, with the hot kernels replaced by the Node-API addon's (kernels.ts) and the
 * fused training kernels added (fused.ts). Registered with a priority below cpu's, so it is used
 * only when selected explicitly: `registerNativeBackend() && await tf.setBackend('native')`.
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-cpu';
import { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import { loadNativeAddon, type NativeAddon } from './addon.js';
import { BufferPool } from './pool.js';
import { fusedKernelConfigs, FUSED_KERNEL_NAMES } from './fused.js';
import { nativeKernelConfigs, nativeKernelNames } from './kernels.js';

export const NATIVE_BACKEND_NAME = 'native';
/** Below cpu's priority (1): never picked automatically. */
export const NATIVE_BACKEND_PRIORITY = 0;

type DataId = object;
type BackendValues = Parameters<MathBackendCPU['write']>[0];

/**
 * MathBackendCPU (without its "install tfjs-node" notice) whose native kernels write into recycled
 * buffers (see pool.ts). Pool size: PERSONA_NATIVE_POOL_MB (default 2048).
 */
export class NativeBackend extends MathBackendCPU {
  readonly pool = new BufferPool((Number(process.env.PERSONA_NATIVE_POOL_MB) || 2048) * 1024 * 1024);

  constructor() {
    super();
    (this as unknown as { firstUse: boolean }).firstUse = false;
  }

  override write(values: BackendValues, shape: number[], dtype: tf.DataType): DataId {
    const id = super.write(values, shape, dtype);
    this.pool.retain(values);
    return id;
  }

  override move(dataId: DataId, values: BackendValues, shape: number[], dtype: tf.DataType, refCount: number): void {
    super.move(dataId, values, shape, dtype, refCount);
    this.pool.retain(values);
  }

  override readSync(dataId: DataId): BackendValues {
    const d = this.data.get(dataId);
    if (d) this.pool.escape(d.values);
    return super.readSync(dataId);
  }

  override disposeData(dataId: DataId, force = false): boolean {
    const d = this.data.get(dataId);
    const values = d?.values;
    const r = super.disposeData(dataId, force);
    if (d && !this.data.has(dataId)) this.pool.release(values);
    return r;
  }
}

let registered = false;

/**
 * Registers the 'native' backend and its kernels. Returns false (and registers nothing) when the
 * addon is unavailable; `nativeBackendStatus().reason` says why. Idempotent.
 */
export function registerNativeBackend(): boolean {
  if (registered) return true;
  const { addon } = loadNativeAddon();
  if (!addon) return false;
  if (tf.findBackendFactory(NATIVE_BACKEND_NAME) == null) {
    tf.registerBackend(NATIVE_BACKEND_NAME, () => new NativeBackend(), NATIVE_BACKEND_PRIORITY);
  }
  const overrides = [...nativeKernelConfigs(addon, NATIVE_BACKEND_NAME), ...fusedKernelConfigs(addon, NATIVE_BACKEND_NAME)];
  const overridden = new Set(overrides.map((c) => c.kernelName));
  for (const cfg of tf.getKernelsForBackend('cpu')) {
    if (overridden.has(cfg.kernelName) || tf.getKernel(cfg.kernelName, NATIVE_BACKEND_NAME)) continue;
    tf.registerKernel({ ...cfg, backendName: NATIVE_BACKEND_NAME });
  }
  for (const cfg of overrides) {
    if (!tf.getKernel(cfg.kernelName, NATIVE_BACKEND_NAME)) tf.registerKernel(cfg);
  }
  registered = true;
  return true;
}

export interface NativeBackendStatus {
  available: boolean;
  reason: string;
  info: ReturnType<NativeAddon['info']> | null;
  nativeKernels: string[];
  fusedKernels: string[];
}

export function nativeBackendStatus(): NativeBackendStatus {
  const { addon, reason } = loadNativeAddon();
  return {
    available: addon != null,
    reason,
    info: addon ? addon.info() : null,
    nativeKernels: addon ? nativeKernelNames(addon) : [],
    fusedKernels: [...FUSED_KERNEL_NAMES],
  };
}

/** Sets the native kernels' thread count (OpenMP); returns the count in effect (0 if unavailable). */
export function setNativeThreads(n: number): number {
  const { addon } = loadNativeAddon();
  return addon ? addon.setThreads(n) : 0;
}

export { kernelStats, resetKernelStats } from './kernels.js';
