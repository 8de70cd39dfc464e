/**
 * The machine as `npm run bench` reports it: the CPU and its vector instruction sets, the matmul
 * kernel oneDNN picked (fp32 and bf16), and the theoretical peaks with their derivation
 * (src/backend/cpu-info.ts); and `--max-isa`, which caps oneDNN and PyTorch at an older
 * instruction set to approximate a machine without AVX-512.
 */
import { bf16Peak, fp32Peak, readCpuInfo, vectorIsa, type CpuInfo, type IsaName, type PeakEstimate } from '../backend/cpu-info.js';
import { loadNativeAddon } from '../backend/native/addon.js';
import type { Precision } from '../backend/product-precision.js';

export const MAX_ISA_CHOICES = ['avx2', 'avx512'] as const;
export type MaxIsa = (typeof MAX_ISA_CHOICES)[number];

/**
 * What each cap sets: oneDNN's ONEDNN_MAX_CPU_ISA for the native backend; for PyTorch, ATen's own
 * kernels (ATEN_CPU_CAPABILITY) and OpenBLAS's, which Debian's torch multiplies with
 * (OPENBLAS_CORETYPE). The addon's element-wise kernels are compiled for the build machine
 * (-march=native); rebuild with PERSONA_NATIVE_MARCH=haswell for those too.
 */
export const ISA_CAPS: Record<MaxIsa, { onednn: string; aten: string; openblas: string }> = {
  avx2: { onednn: 'AVX2', aten: 'avx2', openblas: 'Haswell' },
  avx512: { onednn: 'AVX512_CORE', aten: 'avx512', openblas: 'SkylakeX' },
};

/**
 * Applies a cap to this process (before the addon first runs oneDNN, which reads the variable once)
 * and returns the variables PyTorch's process needs for the same cap.
 */
export function applyIsaCap(cap: MaxIsa): Record<string, string> {
  const c = ISA_CAPS[cap];
  process.env.ONEDNN_MAX_CPU_ISA = c.onednn;
  return { ATEN_CPU_CAPABILITY: c.aten, OPENBLAS_CORETYPE: c.openblas };
}

export interface Machine {
  cpu: CpuInfo;
  isa: IsaName[];
  maxIsa: MaxIsa | null;
  /** The native addon's matmul for [m,k] @ [k,n] (`shape`), per precision ("oneDNN brg:avx512_core", ...); null without the addon. */
  kernels: Record<Precision, string> | null;
  shape: readonly [number, number, number];
}

export function describeMachine(maxIsa: MaxIsa | null, shape: readonly [number, number, number]): Machine {
  const cpu = readCpuInfo();
  const { addon } = loadNativeAddon();
  const [m, k, n] = shape;
  return {
    cpu,
    isa: vectorIsa(cpu),
    maxIsa,
    kernels: addon ? { fp32: addon.matmulImpl(m, n, k, false), bf16: addon.matmulImpl(m, n, k, true) } : null,
    shape,
  };
}

/** The theoretical peak of `threads` cores (at most the CPU's) in a precision; null where there is none (no clock, no bf16 hardware). */
export function theoreticalPeak(machine: Machine, precision: Precision, threads: number | null): PeakEstimate | null {
  const cores = Math.min(machine.cpu.cores, threads ?? machine.cpu.cores);
  return precision === 'bf16' ? bf16Peak(machine.cpu, cores, machine.maxIsa) : fp32Peak(machine.cpu, cores, machine.maxIsa);
}

/** Lines describing the machine, for the log and the Markdown summary. */
export function machineLines(machine: Machine, threads: number | null): string[] {
  const { cpu } = machine;
  const lines = [
    `CPU: ${cpu.model} (${cpu.vendor || 'vendor not reported'}${cpu.family !== null ? `, family ${cpu.family} model ${cpu.modelNumber}` : ''}), ${cpu.cores} cores, ${cpu.logical} hardware threads, clock ${cpu.mhz ? `${cpu.mhz.toFixed(0)} MHz (${cpu.clockSource})` : 'not reported'}; read from ${cpu.source}`,
    `vector ISA: ${machine.isa.join(', ') || 'none reported'}${machine.maxIsa ? `; capped at ${machine.maxIsa} (--max-isa: ONEDNN_MAX_CPU_ISA=${ISA_CAPS[machine.maxIsa].onednn}, PyTorch ATEN_CPU_CAPABILITY=${ISA_CAPS[machine.maxIsa].aten} and OPENBLAS_CORETYPE=${ISA_CAPS[machine.maxIsa].openblas})` : ''}`,
  ];
  const [m, k, n] = machine.shape;
  if (machine.kernels) lines.push(`native matmul kernel [${m}x${k}]@[${k}x${n}]: fp32 ${machine.kernels.fp32}; bf16 ${machine.kernels.bf16}`);
  for (const precision of ['fp32', 'bf16'] as const) {
    const peak = theoreticalPeak(machine, precision, threads);
    if (peak) lines.push(`theoretical ${precision} peak (an estimate): ${peak.formula}; ${peak.assumptions.join('; ')}`);
    else if (precision === 'fp32') lines.push('theoretical fp32 peak: not estimated (the OS reports no clock)');
  }
  return lines;
}
