/**
 * The CPU description the benchmark reports and `--precision auto` relies on, parsed from samples of
 * other machines' /proc/cpuinfo and sysctl output (abridged to the fields the parser reads).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { bf16Peak, fmaCapacity, fp32Peak, hasBf16Hardware, parseProcCpuinfo, parseSysctl, vectorIsa } from '../src/backend/cpu-info.js';

const cpuinfo = (blocks: Array<Record<string, string>>) => blocks.map((b) => Object.entries(b).map(([k, v]) => `${k}\t: ${v}`).join('\n')).join('\n\n') + '\n';

// The KVM guest this was written on: a Sapphire Rapids host presented as model 167 (Rocket Lake's number).
const SPR_FLAGS = 'fpu vme sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c avx2 avx512f avx512dq avx512cd avx512bw avx512vl avx_vnni avx512_bf16 avx512vbmi avx512_vnni amx_bf16 avx512_fp16 amx_tile amx_int8';
const spr = cpuinfo([0, 1].map((p) => ({
  processor: String(p), vendor_id: 'GenuineIntel', 'cpu family': '6', model: '167', 'model name': 'Intel(R) Xeon(R) Processor',
  'cpu MHz': '2599.998', 'physical id': '0', siblings: '2', 'core id': String(p), 'cpu cores': '2', flags: SPR_FLAGS,
})));

// A 2-core AMD EPYC (Zen 3) without AVX-512, hyperthreaded: 4 logical CPUs on 2 cores.
const EPYC_FLAGS = 'fpu sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c avx2 bmi2 sha_ni';
const epyc = cpuinfo([0, 1, 2, 3].map((p) => ({
  processor: String(p), vendor_id: 'AuthenticAMD', 'cpu family': '25', model: '1', 'model name': 'AMD EPYC 7B13', 'cpu MHz': '2449.998',
  'physical id': '0', 'core id': String(p >> 1), flags: EPYC_FLAGS,
})));

// An Arm Neoverse N1 server (Graviton2): no model name, no clock in /proc/cpuinfo.
const n1 = cpuinfo([0, 1].map((p) => ({
  processor: String(p), BogoMIPS: '243.75', Features: 'fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp ssbs',
  'CPU implementer': '0x41', 'CPU architecture': '8', 'CPU variant': '0x3', 'CPU part': '0xd0c', 'CPU revision': '1',
})));

test('a Sapphire Rapids KVM guest: AVX-512, AVX512-BF16 and AMX; two 512-bit FMA units; 332.8 GFLOP/s at 2.6 GHz on 2 cores', () => {
  const info = parseProcCpuinfo(spr);
  assert.equal(info.model, 'Intel(R) Xeon(R) Processor');
  assert.equal(info.vendor, 'GenuineIntel');
  assert.equal(info.modelNumber, 167);
  assert.equal(info.cores, 2);
  assert.equal(info.logical, 2);
  assert.deepEqual(vectorIsa(info), ['SSE4.2', 'AVX', 'AVX2', 'FMA', 'AVX-512', 'AVX512-VNNI', 'AVX512-BF16', 'AVX512-FP16', 'AMX-BF16']);
  assert.equal(hasBf16Hardware(info), true);
  // The family comes from AMX, not from model 167 (a client part with one FMA unit would halve the peak).
  assert.equal(fmaCapacity(info).fmaUnits, 2);
  const peak = fp32Peak(info)!;
  assert.ok(Math.abs(peak.gflops - 2 * 2 * 16 * 2 * 2.599998) < 1e-6, `${peak.gflops}`);
  assert.match(peak.formula, /^2 cores x 2 FMA units x 16 fp32 lanes \(512-bit\) x 2 FLOP x 2\.60 GHz = 332\.8 GFLOP\/s$/);
  assert.ok(peak.assumptions.some((a) => /cpu MHz/.test(a)), 'says where the clock came from');
  const bf16 = bf16Peak(info)!;
  assert.ok(Math.abs(bf16.gflops - 2 * 1024 * 2.599998) < 1e-6);
  assert.match(bf16.formula, /AMX/);
});

test('cpufreq\'s maximum clock wins over "cpu MHz"; --max-isa avx2 halves the vector width and drops the bf16 peak', () => {
  const info = parseProcCpuinfo(spr, 3_800_000);
  assert.equal(info.mhz, 3800);
  assert.match(info.clockSource, /cpuinfo_max_freq/);
  const capped = fp32Peak(info, 2, 'avx2')!;
  assert.match(capped.formula, /2 FMA units x 8 fp32 lanes \(256-bit\)/);
  assert.equal(bf16Peak(info, 2, 'avx2'), null);
});

test('an AVX2-only AMD EPYC (Zen 3): hyperthreads are not cores; no bf16 hardware', () => {
  const info = parseProcCpuinfo(epyc);
  assert.equal(info.cores, 2);
  assert.equal(info.logical, 4);
  assert.deepEqual(vectorIsa(info), ['SSE4.2', 'AVX', 'AVX2', 'FMA']);
  assert.equal(hasBf16Hardware(info), false);
  const cap = fmaCapacity(info);
  assert.equal(cap.family, 'AMD Zen 3');
  assert.equal(cap.vectorBits, 256);
  assert.ok(Math.abs(fp32Peak(info)!.gflops - 2 * 2 * 8 * 2 * 2.449998) < 1e-6);
  assert.match(fp32Peak(info)!.assumptions.join(' '), /4 hardware threads share/);
  assert.equal(bf16Peak(info), null);
});

test('an Arm Neoverse N1: NEON, two 128-bit FMA units, and no peak without a clock', () => {
  const info = parseProcCpuinfo(n1);
  assert.deepEqual(vectorIsa(info), ['NEON']);
  assert.equal(info.armPart, '0x41:0xd0c');
  assert.equal(info.cores, 2);
  assert.equal(fmaCapacity(info).vectorBits, 128);
  assert.equal(info.mhz, null);
  assert.equal(fp32Peak(info), null);
  const clocked = parseProcCpuinfo(n1, 2_500_000);
  assert.ok(Math.abs(fp32Peak(clocked)!.gflops - 2 * 2 * 4 * 2 * 2.5) < 1e-9);
});

test('macOS: an Intel Mac from machdep.cpu features, an Apple M2 from its brand and published clock', () => {
  const intel = parseSysctl([
    'machdep.cpu.brand_string: Intel(R) Core(TM) i9-9880H CPU @ 2.30GHz', 'machdep.cpu.vendor: GenuineIntel', 'machdep.cpu.family: 6', 'machdep.cpu.model: 158',
    'machdep.cpu.features: FPU VME SSE SSE2 SSE3 FMA SSE4.1 SSE4.2 AVX1.0', 'machdep.cpu.leaf7_features: SMEP BMI1 AVX2 BMI2', 'hw.physicalcpu: 8', 'hw.logicalcpu: 16',
    'hw.cpufrequency_max: 2300000000',
  ].join('\n'));
  assert.deepEqual(vectorIsa(intel), ['SSE4.2', 'AVX', 'AVX2', 'FMA']);
  assert.equal(intel.cores, 8);
  assert.ok(Math.abs(fp32Peak(intel)!.gflops - 8 * 2 * 8 * 2 * 2.3) < 1e-9);
  const m2 = parseSysctl(['machdep.cpu.brand_string: Apple M2', 'hw.physicalcpu: 8', 'hw.logicalcpu: 8', 'hw.perflevel0.physicalcpu: 4', 'hw.optional.arm.FEAT_BF16: 1'].join('\n'));
  assert.deepEqual(vectorIsa(m2), ['NEON', 'ARM-BF16']);
  assert.equal(m2.cores, 4, 'P-cores only');
  assert.equal(hasBf16Hardware(m2), false, 'oneDNN\'s bf16 path here is x86 (AVX512-BF16, AMX)');
  assert.ok(Math.abs(fp32Peak(m2)!.gflops - 4 * 4 * 4 * 2 * 3.5) < 1e-9);
});
