/**
 * What CPU this is, from what the operating system reports: the model, the vector instruction
 * sets that matter to matrix products (AVX2, AVX-512, AVX512-BF16, AMX; NEON, SVE), the core
 * count and a clock, and from those an estimate of the theoretical peak (cores x FMA units x lanes
 * x 2 x clock). Linux reads /proc/cpuinfo (and cpufreq's maximum clock where the kernel exposes
 * it), macOS `sysctl`. The parsers take text, so they are tested on samples of other machines.
 *
 * The peak is an estimate, and says how it was derived: the FMA units per core come from the
 * microarchitecture family, which is read from the instruction sets present (a hypervisor may
 * report a CPU model number that is not the host's, as the KVM guest this was written on does),
 * and the clock is the kernel's maximum where it has one, else the clock it reports now.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { arch, cpus, platform } from 'node:os';

export interface CpuInfo {
  /** The model as the OS names it ("Intel(R) Xeon(R) Processor", "Apple M2"). */
  model: string;
  /** GenuineIntel, AuthenticAMD, Apple, or an ARM implementer code; '' when not reported. */
  vendor: string;
  /** x86 family and model numbers (null elsewhere). */
  family: number | null;
  modelNumber: number | null;
  /** ARM: implementer and part codes from /proc/cpuinfo ("0x41", "0xd0c"); '' elsewhere. */
  armPart: string;
  /** Physical cores, and logical CPUs (hardware threads). */
  cores: number;
  logical: number;
  /** Feature flags, lowercase, as the OS spells them (Linux: avx512_bf16, amx_tile, asimd; macOS: mapped to the same names). */
  flags: Set<string>;
  /** Clock in MHz and where it came from; null when the OS reports none. */
  mhz: number | null;
  clockSource: string;
  /** Where all of this was read from. */
  source: string;
}

/** The vector instruction sets the benchmark reports, in the order they are listed. */
export const ISA_NAMES = ['SSE4.2', 'AVX', 'AVX2', 'FMA', 'AVX-512', 'AVX512-VNNI', 'AVX512-BF16', 'AVX512-FP16', 'AMX-BF16', 'NEON', 'SVE', 'ARM-BF16'] as const;
export type IsaName = (typeof ISA_NAMES)[number];

const ISA_FLAGS: Record<IsaName, string[]> = {
  'SSE4.2': ['sse4_2'],
  AVX: ['avx'],
  AVX2: ['avx2'],
  FMA: ['fma'],
  'AVX-512': ['avx512f'],
  'AVX512-VNNI': ['avx512_vnni'],
  'AVX512-BF16': ['avx512_bf16'],
  'AVX512-FP16': ['avx512_fp16'],
  'AMX-BF16': ['amx_bf16'],
  NEON: ['asimd', 'neon'],
  SVE: ['sve'],
  'ARM-BF16': ['bf16'],
};

/** The instruction sets of ISA_NAMES this CPU has. */
export function vectorIsa(info: Pick<CpuInfo, 'flags'>): IsaName[] {
  return ISA_NAMES.filter((name) => ISA_FLAGS[name].some((f) => info.flags.has(f)));
}

/** True when the CPU multiplies bf16 in hardware the native backend's oneDNN uses: AVX512-BF16 or AMX. */
export function hasBf16Hardware(info: Pick<CpuInfo, 'flags'>): boolean {
  return info.flags.has('avx512_bf16') || info.flags.has('amx_bf16');
}

// ---------------------------------------------------------------- parsing

function field(block: string, key: string): string | undefined {
  const m = block.match(new RegExp(`^${key}\\s*:\\s*(.*)$`, 'm'));
  return m ? m[1].trim() : undefined;
}

/**
 * /proc/cpuinfo as Linux writes it (x86 and ARM). `maxKhz` is cpufreq's cpuinfo_max_freq when the
 * kernel exposes it (it does not in many VMs).
 */
export function parseProcCpuinfo(text: string, maxKhz: number | null = null): CpuInfo {
  const blocks = text.split(/\n\s*\n/).filter((b) => /^processor\s*:/m.test(b));
  const first = blocks[0] ?? text;
  const flags = new Set((field(first, 'flags') ?? field(first, 'Features') ?? '').toLowerCase().split(/\s+/).filter(Boolean));
  // Physical cores: distinct (physical id, core id) pairs where reported, else one per processor.
  const pairs = new Set(blocks.map((b) => `${field(b, 'physical id') ?? '0'}:${field(b, 'core id') ?? field(b, 'processor')}`));
  const logical = Math.max(1, blocks.length);
  const num = (v: string | undefined) => (v === undefined || v === '' ? null : Number.parseInt(v, v.startsWith('0x') ? 16 : 10));
  const implementer = field(first, 'CPU implementer') ?? '';
  const part = field(first, 'CPU part') ?? '';
  const mhzNow = Number(field(first, 'cpu MHz'));
  const model = field(first, 'model name') ?? (implementer ? `ARM implementer ${implementer} part ${part}` : 'unknown');
  let mhz: number | null = null;
  let clockSource = 'not reported';
  if (maxKhz && maxKhz > 0) {
    mhz = maxKhz / 1000;
    clockSource = 'cpufreq cpuinfo_max_freq';
  } else if (Number.isFinite(mhzNow) && mhzNow > 0) {
    mhz = mhzNow;
    clockSource = '/proc/cpuinfo "cpu MHz" (the clock now; a VM reports its nominal clock)';
  }
  return {
    model,
    vendor: field(first, 'vendor_id') ?? implementer,
    family: num(field(first, 'cpu family')),
    modelNumber: num(field(first, 'model')),
    armPart: implementer ? `${implementer}:${part}` : '',
    cores: Math.max(1, pairs.size),
    logical,
    flags,
    mhz,
    clockSource,
    source: '/proc/cpuinfo',
  };
}

/** macOS feature names (sysctl machdep.cpu.*features, hw.optional.*) as the Linux flag names used above. */
const MAC_FLAGS: Record<string, string> = {
  'sse4.2': 'sse4_2', avx1: 'avx', 'avx1.0': 'avx', avx2: 'avx2', fma: 'fma', avx512f: 'avx512f', avx512vnni: 'avx512_vnni',
  avx512bf16: 'avx512_bf16', 'hw.optional.avx2_0': 'avx2', 'hw.optional.avx512f': 'avx512f', 'hw.optional.neon': 'asimd',
  'hw.optional.arm.fp_simd': 'asimd', 'hw.optional.arm.feat_bf16': 'bf16', 'hw.optional.arm.feat_sve': 'sve',
};

/** `sysctl -a` (or the machdep.cpu and hw subsets) as macOS prints it: `key: value` lines. */
export function parseSysctl(text: string): CpuInfo {
  const kv = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = line.match(/^([\w.]+):\s*(.*)$/);
    if (m) kv.set(m[1], m[2].trim());
  }
  const flags = new Set<string>();
  for (const key of ['machdep.cpu.features', 'machdep.cpu.leaf7_features', 'machdep.cpu.extfeatures']) {
    for (const f of (kv.get(key) ?? '').toLowerCase().split(/\s+/).filter(Boolean)) flags.add(MAC_FLAGS[f] ?? f);
  }
  for (const [key, v] of kv) {
    const name = MAC_FLAGS[key.toLowerCase()];
    if (name && v === '1') flags.add(name);
  }
  const brand = kv.get('machdep.cpu.brand_string') ?? 'unknown';
  // Apple silicon has NEON on every core; sysctl names it hw.optional.neon (or arm.AdvSIMD).
  if (/^Apple/.test(brand) || kv.get('hw.optional.arm64') === '1' || kv.get('hw.optional.AdvSIMD') === '1') flags.add('asimd');
  const hz = Number(kv.get('hw.cpufrequency_max') ?? kv.get('hw.cpufrequency'));
  const apple = appleClock(brand);
  const mhz = Number.isFinite(hz) && hz > 0 ? hz / 1e6 : apple;
  const cores = Number(kv.get('hw.perflevel0.physicalcpu') ?? kv.get('hw.physicalcpu')) || 1;
  return {
    model: brand,
    vendor: kv.get('machdep.cpu.vendor') ?? (/^Apple/.test(brand) ? 'Apple' : ''),
    family: kv.has('machdep.cpu.family') ? Number(kv.get('machdep.cpu.family')) : null,
    modelNumber: kv.has('machdep.cpu.model') ? Number(kv.get('machdep.cpu.model')) : null,
    armPart: '',
    cores,
    logical: Number(kv.get('hw.logicalcpu')) || cores,
    flags,
    mhz,
    clockSource: Number.isFinite(hz) && hz > 0 ? 'sysctl hw.cpufrequency_max' : apple ? `Apple's published P-core maximum for the ${brand}` : 'not reported',
    source: 'sysctl',
  };
}

/** Apple silicon does not report its clock: the published P-core maxima (MHz) by chip generation. */
function appleClock(brand: string): number | null {
  const m = brand.match(/^Apple M(\d)/);
  return m ? ({ 1: 3200, 2: 3500, 3: 4050, 4: 4400 } as Record<string, number>)[m[1]] ?? null : null;
}

let cached: CpuInfo | null = null;

/** This machine's CPU (read once). */
export function readCpuInfo(): CpuInfo {
  if (cached) return cached;
  if (platform() === 'linux' && existsSync('/proc/cpuinfo')) {
    const freq = '/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq';
    const maxKhz = existsSync(freq) ? Number(readFileSync(freq, 'utf8').trim()) || null : null;
    cached = parseProcCpuinfo(readFileSync('/proc/cpuinfo', 'utf8'), maxKhz);
  } else if (platform() === 'darwin') {
    const r = spawnSync('sysctl', ['-a'], { encoding: 'utf8', timeout: 10_000 });
    cached = parseSysctl(r.stdout ?? '');
  } else {
    const list = cpus();
    cached = {
      model: list[0]?.model ?? 'unknown', vendor: '', family: null, modelNumber: null, armPart: '', cores: list.length || 1, logical: list.length || 1,
      flags: new Set(), mhz: list[0]?.speed || null, clockSource: list[0]?.speed ? 'os.cpus() speed' : 'not reported', source: `os.cpus() (${platform()} ${arch()})`,
    };
  }
  return cached;
}

// ---------------------------------------------------------------- peak estimate

/** Per core: how many FMA pipes of what width issue every cycle, and why that is assumed. */
export interface FmaCapacity {
  family: string;
  fmaUnits: number;
  vectorBits: number;
  /** The reasoning behind fmaUnits and vectorBits (printed with the estimate). */
  basis: string;
}

/**
 * The fp32 FMA capacity of one core, by microarchitecture family as the instruction sets reveal it.
 * `maxIsa` caps the vector width (the benchmark's --max-isa approximates an AVX2 machine).
 */
export function fmaCapacity(info: CpuInfo, maxIsa: 'avx2' | 'avx512' | null = null): FmaCapacity {
  const f = info.flags;
  const intel = info.vendor === 'GenuineIntel';
  const amd = info.vendor === 'AuthenticAMD' || info.vendor === 'HygonGenuine';
  const avx512 = f.has('avx512f') && maxIsa !== 'avx2';
  if (maxIsa === 'avx2' && f.has('avx2') && f.has('fma')) {
    return { family: 'capped at AVX2', fmaUnits: 2, vectorBits: 256, basis: 'capped at AVX2 (--max-isa): two 256-bit FMA pipes, as on Haswell and later Intel and Zen 2 and later AMD cores' };
  }
  if (f.has('amx_tile') || f.has('amx_bf16')) {
    return { family: 'Intel Sapphire Rapids or later (AMX)', fmaUnits: 2, vectorBits: 512, basis: 'AMX implies a Xeon of Sapphire Rapids or later: two 512-bit FMA pipes (ports 0 and 5)' };
  }
  if (intel && avx512) {
    if (/xeon/i.test(info.model)) {
      return { family: 'Intel Xeon with AVX-512', fmaUnits: 2, vectorBits: 512, basis: 'Xeon with AVX-512 (Skylake-SP to Ice Lake-SP): two 512-bit FMA pipes assumed (some Bronze, Silver and Gold 5xxx parts before Ice Lake have one)' };
    }
    return { family: 'Intel client with AVX-512', fmaUnits: 1, vectorBits: 512, basis: 'client core with AVX-512 (Ice Lake, Tiger Lake, Rocket Lake): one 512-bit FMA (ports 0 and 1 fused)' };
  }
  if (amd && info.family !== null) {
    if (info.family >= 0x1a && avx512) return { family: 'AMD Zen 5', fmaUnits: 2, vectorBits: 512, basis: 'AMD family 1Ah (Zen 5): two 512-bit FMA pipes (desktop and server parts; mobile Zen 5 has 256-bit pipes)' };
    if (info.family === 0x19) {
      return {
        family: avx512 ? 'AMD Zen 4' : 'AMD Zen 3', fmaUnits: 2, vectorBits: 256,
        basis: avx512 ? 'AMD family 19h with AVX-512 (Zen 4): two 256-bit FMA pipes; 512-bit instructions run as two halves' : 'AMD family 19h (Zen 3): two 256-bit FMA pipes',
      };
    }
    if (info.family === 0x17 || info.family === 0x18) {
      const zen2 = info.family === 0x17 && (info.modelNumber ?? 0) >= 0x30;
      return zen2
        ? { family: 'AMD Zen 2', fmaUnits: 2, vectorBits: 256, basis: 'AMD family 17h model 30h or later (Zen 2): two 256-bit FMA pipes' }
        : { family: 'AMD Zen 1', fmaUnits: 2, vectorBits: 128, basis: 'AMD family 17h/18h before model 30h (Zen, Zen+): two 128-bit FMA pipes; 256-bit instructions run as two halves' };
    }
  }
  if (f.has('avx2') && f.has('fma')) return { family: 'x86 with AVX2 and FMA', fmaUnits: 2, vectorBits: 256, basis: 'AVX2 with FMA: two 256-bit FMA pipes assumed (Haswell and later Intel cores; Intel E-cores have fewer)' };
  if (f.has('avx')) return { family: 'x86 with AVX, no FMA', fmaUnits: 1, vectorBits: 256, basis: 'AVX without FMA (Sandy Bridge, Ivy Bridge): one 256-bit add and one 256-bit multiply per cycle, counted as one FMA' };
  if (f.has('asimd') || f.has('neon')) {
    if (info.vendor === 'Apple' || /^Apple/.test(info.model)) return { family: 'Apple silicon', fmaUnits: 4, vectorBits: 128, basis: 'Apple silicon P-core: four 128-bit NEON FMA pipes (efficiency cores have fewer; all cores are counted as P-cores)' };
    const wide = ['0x41:0xd40', '0x41:0xd4f', '0x41:0xd4e', '0x41:0xd81'];
    if (wide.includes(info.armPart)) return { family: 'Arm Neoverse V / Cortex-X', fmaUnits: 4, vectorBits: 128, basis: `Arm part ${info.armPart} (Neoverse V1/V2, Cortex-X3/X925): four 128-bit FMA pipes` };
    return { family: 'Arm with NEON', fmaUnits: 2, vectorBits: 128, basis: 'Arm core with NEON: two 128-bit FMA pipes assumed (Neoverse N1/N2, Cortex-A7x)' };
  }
  return { family: 'x86 with SSE', fmaUnits: 1, vectorBits: 128, basis: 'no AVX: one 128-bit add and one 128-bit multiply per cycle, counted as one FMA' };
}

export interface PeakEstimate {
  gflops: number;
  /** The product written out, e.g. "2 cores x 2 FMA units x 16 fp32 lanes x 2 FLOP x 2.60 GHz = 332.8 GFLOP/s". */
  formula: string;
  /** Everything assumed to get there. */
  assumptions: string[];
}

/** The theoretical fp32 peak of `cores` cores (default: all physical cores), or null without a clock. */
export function fp32Peak(info: CpuInfo, cores = info.cores, maxIsa: 'avx2' | 'avx512' | null = null): PeakEstimate | null {
  if (!info.mhz) return null;
  const cap = fmaCapacity(info, maxIsa);
  const lanes = cap.vectorBits / 32;
  const ghz = info.mhz / 1000;
  const gflops = cores * cap.fmaUnits * lanes * 2 * ghz;
  return {
    gflops,
    formula: `${cores} cores x ${cap.fmaUnits} FMA units x ${lanes} fp32 lanes (${cap.vectorBits}-bit) x 2 FLOP x ${ghz.toFixed(2)} GHz = ${gflops.toFixed(1)} GFLOP/s`,
    assumptions: [cap.basis, `clock: ${info.clockSource}; sustained vector code may run below it (AVX-512 licence) or above it (turbo)`, coresNote(info)],
  };
}

/**
 * The theoretical bf16 peak where the CPU multiplies bf16 in hardware: AMX (Intel's figure of 1024
 * bf16 FLOP per cycle per core: one 16x16x32 TDPBF16PS every 16 cycles) or AVX512-BF16 (VDPBF16PS:
 * two bf16 products per fp32 lane, twice the fp32 rate); null elsewhere or without a clock.
 */
export function bf16Peak(info: CpuInfo, cores = info.cores, maxIsa: 'avx2' | 'avx512' | null = null): PeakEstimate | null {
  if (!info.mhz || maxIsa !== null || !hasBf16Hardware(info)) return null;
  const ghz = info.mhz / 1000;
  if (info.flags.has('amx_bf16')) {
    const gflops = cores * 1024 * ghz;
    return {
      gflops,
      formula: `${cores} cores x 1024 bf16 FLOP/cycle (AMX) x ${ghz.toFixed(2)} GHz = ${gflops.toFixed(1)} GFLOP/s`,
      assumptions: ['AMX: one TDPBF16PS (16x16x32 multiply-adds) every 16 cycles per core', `clock: ${info.clockSource}`, coresNote(info)],
    };
  }
  const fp32 = fp32Peak(info, cores)!;
  return {
    gflops: 2 * fp32.gflops,
    formula: `2 x fp32 peak (VDPBF16PS: two bf16 products per fp32 lane) = ${(2 * fp32.gflops).toFixed(1)} GFLOP/s`,
    assumptions: ['AVX512-BF16: VDPBF16PS on the fp32 FMA pipes', ...fp32.assumptions],
  };
}

function coresNote(info: CpuInfo): string {
  return info.logical > info.cores
    ? `${info.cores} physical cores (${info.logical} hardware threads share their FMA units)`
    : `${info.cores} cores as the OS reports them (a VM's virtual CPUs may be hyperthreads of fewer physical cores)`;
}
