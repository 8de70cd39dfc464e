/**
 * What `--precision fp32|bf16|auto` means on this machine and backend (the precision in effect
 * during a training step is product-precision.ts's).
 */
import * as tf from '@tensorflow/tfjs';
import { hasBf16Hardware, readCpuInfo, vectorIsa } from './cpu-info.js';
import { loadNativeAddon } from './native/addon.js';
import { NATIVE_BACKEND_NAME } from './native/native-backend.js';
import type { Precision } from './product-precision.js';

export const PRECISION_CHOICES = ['fp32', 'bf16', 'auto'] as const;
export type PrecisionChoice = (typeof PRECISION_CHOICES)[number];

export interface Bf16Support {
  /** The CPU has AVX512-BF16 or AMX. */
  hardware: boolean;
  /** What runs a bf16 product in the native addon ("oneDNN brg:avx512_core_amx_bf16", or an emulation); '' without the addon. */
  kernel: string;
  /** oneDNN has a bf16 matmul here (not the float32 emulation). */
  native: boolean;
}

/** What this machine offers for bf16 products (the addon creates, and caches, one bf16 matmul to ask). */
export function bf16Support(): Bf16Support {
  const hardware = hasBf16Hardware(readCpuInfo());
  const { addon } = loadNativeAddon();
  if (!addon) return { hardware, kernel: '', native: false };
  const kernel = addon.matmulImpl(2048, 512, 512, true);
  return { hardware, kernel, native: kernel.startsWith('oneDNN') && !kernel.includes('bf16-rounded') };
}

export interface PrecisionDecision {
  precision: Precision;
  /** Why, in words (printed by the commands). */
  reason: string;
}

/**
 * A --precision choice on a backend. `auto` is bf16 where the backend is native and the CPU
 * multiplies bf16 in hardware that oneDNN uses (AVX512-BF16 or AMX), fp32 elsewhere. An explicit
 * bf16 needs the native backend (the other backends have no bf16 products); without bf16 hardware
 * it runs, emulated and slower than fp32, and says so.
 */
export function resolvePrecision(choice: PrecisionChoice, backend = tf.getBackend(), support: () => Bf16Support = bf16Support): PrecisionDecision {
  if (!(PRECISION_CHOICES as readonly string[]).includes(choice)) throw new Error(`--precision must be one of ${PRECISION_CHOICES.join(', ')}, got "${String(choice)}"`);
  if (choice === 'fp32') return { precision: 'fp32', reason: 'as asked (--precision fp32)' };
  const native = backend === NATIVE_BACKEND_NAME;
  if (choice === 'bf16') {
    if (!native) throw new Error(`--precision bf16 needs the native backend (this run uses ${backend}, whose products are float32 only); use --backend native or --precision fp32`);
    const s = support();
    return { precision: 'bf16', reason: s.native && s.hardware ? `as asked (--precision bf16): ${s.kernel}` : `as asked (--precision bf16), but emulated here (${s.kernel || 'no bf16 matmul'}): slower than fp32` };
  }
  if (!native) return { precision: 'fp32', reason: `auto: the ${backend} backend computes in float32 only` };
  const s = support();
  if (!s.hardware) return { precision: 'fp32', reason: `auto: this CPU has neither AVX512-BF16 nor AMX (${vectorIsa(readCpuInfo()).join(', ') || 'no vector ISA reported'})` };
  if (!s.native) return { precision: 'fp32', reason: `auto: the CPU has bf16 instructions but oneDNN offers no bf16 matmul here (${s.kernel || 'no oneDNN'}; ONEDNN_MAX_CPU_ISA=${process.env.ONEDNN_MAX_CPU_ISA ?? '(unset)'})` };
  return { precision: 'bf16', reason: `auto: the CPU has ${readCpuInfo().flags.has('amx_bf16') ? 'AMX' : 'AVX512-BF16'} (${s.kernel}); products in bf16 with float32 accumulation, float32 weights and optimizer state` };
}
