// Matrix products: oneDNN matmul (primitives cached by shape), OpenBLAS sgemm, or a plain loop.
// Builds against oneDNN 2.x and 3.x (DNNL_VERSION_MAJOR selects the API: 3.0 removed
// matmul::desc and the scale argument of post_ops::append_eltwise).
#include "common.h"
#include <algorithm>
#include <array>
#include <climits>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#ifdef PN_HAVE_DNNL
#include <dnnl.hpp>
#ifndef DNNL_VERSION_MAJOR
#include <dnnl_version.h>
#endif
#if DNNL_VERSION_MAJOR < 2 || DNNL_VERSION_MAJOR > 3
#error "persona native: oneDNN 2.x or 3.x is required (set PERSONA_NATIVE_DNNL=0 to build with OpenBLAS only)"
#endif
#endif
#ifdef PN_HAVE_BLAS
#include <cblas.h>
#endif

namespace pnative {

bool have_dnnl() {
#ifdef PN_HAVE_DNNL
  return true;
#else
  return false;
#endif
}
bool have_blas() {
#ifdef PN_HAVE_BLAS
  return true;
#else
  return false;
#endif
}

const char* dnnl_version_string() {
#ifdef PN_HAVE_DNNL
  static std::string v;
  if (v.empty()) {
    const dnnl_version_t* d = dnnl_version();
    v = std::to_string(d->major) + "." + std::to_string(d->minor) + "." + std::to_string(d->patch);
  }
  return v.c_str();
#else
  return "";
#endif
}

// Per-case default engine: index = transA*2 + transB (+4 when batched).
static int g_default[GEMM_CASES] = {0, 0, 0, 0, 0, 0, 0, 0};
bool gemm_set_default(int op_case, int engine) {
  if (op_case < 0 || op_case >= GEMM_CASES || engine < GEMM_AUTO || engine > GEMM_REF) return false;
  g_default[op_case] = engine;
  return true;
}

// ---------------------------------------------------------------- reference
static void gemm_ref(const Gemm& g) {
  const i64 M = g.M, N = g.N, K = g.K;
  par_items(g.batch * M, N * K, 4096, [&](i64 item) {
    i64 b = item / M, i = item % M;
    const float* A = g.A + (g.batchA == 1 ? 0 : b) * M * K;
    const float* Bm = g.B + (g.batchB == 1 ? 0 : b) * K * N;
    float* c = g.C + b * M * N + i * N;
    std::vector<float> acc(N, 0.0f);
    float* ac = acc.data();
    for (i64 k = 0; k < K; k++) {
      float a = g.transA ? A[k * M + i] : A[i * K + k];
      if (g.transB) {
        for (i64 j = 0; j < N; j++) ac[j] += a * Bm[j * K + k];
      } else {
        const float* br = Bm + k * N;
#pragma omp simd
        for (i64 j = 0; j < N; j++) ac[j] += a * br[j];
      }
    }
    for (i64 j = 0; j < N; j++) {
      float v = ac[j] + (g.bias ? g.bias[j] : 0.0f) + (g.accumulate ? c[j] : 0.0f);
      if (g.act == 1 && v < 0) v = 0;
      c[j] = v;
    }
  });
}

// ---------------------------------------------------------------- bf16 conversion
static inline uint16_t bf16_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  // A NaN keeps its sign and becomes a quiet NaN (rounding could carry it into infinity).
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest, ties to even
  return (uint16_t)(u >> 16);
}
static inline void bf16_run(const float* x, uint16_t* y, i64 n) {
#pragma omp simd
  for (i64 i = 0; i < n; i++) y[i] = bf16_bits(x[i]);
}
static inline void round_run(const float* x, float* y, i64 n) {
#pragma omp simd
  for (i64 i = 0; i < n; i++) {
    uint32_t u = (uint32_t)bf16_bits(x[i]) << 16;
    std::memcpy(&y[i], &u, 4);
  }
}
// Converts a and b as one range over both: one parallel region for a product's two inputs, since
// each region has to wake the other threads (slow on a loaded machine with passive waiting).
template <class T, class F>
static void convert_pair(const float* a, T* qa, i64 na, const float* b, T* qb, i64 nb, F run) {
  par_range(na + nb, EW_GRAIN, [&](i64 lo, i64 hi) {
    if (lo < na) run(a + lo, qa + lo, std::min(hi, na) - lo);
    if (hi > na) {
      const i64 s = std::max(lo, na) - na;
      run(b + s, qb + s, hi - na - s);
    }
  });
}
// Scratch that only grows (a fresh multi-MB buffer per call costs page faults), per JS thread.
template <class T>
static T* grow(std::vector<T>& v, i64 n) {
  if ((i64)v.size() < n) v.resize(n);
  return v.data();
}

// ---------------------------------------------------------------- oneDNN
#ifdef PN_HAVE_DNNL
struct DnnlCtx {
  dnnl::engine& eng;
  dnnl::stream& strm;
};
static DnnlCtx dctx() {
  static dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  static thread_local dnnl::stream strm(eng);  // a stream per calling thread
  return {eng, strm};
}
struct DnnlEntry {
  // false: oneDNN has no implementation of this bf16 case (the caller emulates it).
  bool ok;
  dnnl::matmul prim;
  dnnl::memory::desc a, b, c, bias;
  std::string impl;
};
typedef std::array<i64, 11> DKey;
static std::map<DKey, std::shared_ptr<DnnlEntry>> g_cache;
static std::mutex g_cache_mu;

// The cached primitive for g's shape, layout and precision (g's pointers are not used). A float32
// case oneDNN cannot create throws dnnl::error; a bf16 one is cached as not ok.
static std::shared_ptr<DnnlEntry> dnnl_entry(const Gemm& g) {
  using namespace dnnl;
  using dt = memory::data_type;
  const i64 M = g.M, N = g.N, K = g.K;
  bool batched = g.batch > 1;
  DKey key = {g.batchA, g.batchB, M, N, K, g.transA, g.transB, g.bias != nullptr, g.act, g.accumulate, g.bf16};
  std::lock_guard<std::mutex> lk(g_cache_mu);
  auto it = g_cache.find(key);
  if (it != g_cache.end()) return it->second;
  if (g_cache.size() >= 4096) g_cache.clear();  // bound the cache (many distinct shapes, e.g. sampling)
  const dt in = g.bf16 ? dt::bf16 : dt::f32;
  memory::desc a, b, c, bias;
  if (!batched) {
    a = memory::desc({M, K}, in, g.transA ? memory::dims{1, M} : memory::dims{K, 1});
    b = memory::desc({K, N}, in, g.transB ? memory::dims{1, K} : memory::dims{N, 1});
    c = memory::desc({M, N}, dt::f32, memory::dims{N, 1});
    if (g.bias) bias = memory::desc({1, N}, dt::f32, memory::dims{N, 1});
  } else {
    a = memory::desc({g.batchA, M, K}, in, g.transA ? memory::dims{M * K, 1, M} : memory::dims{M * K, K, 1});
    b = memory::desc({g.batchB, K, N}, in, g.transB ? memory::dims{K * N, 1, K} : memory::dims{K * N, N, 1});
    c = memory::desc({g.batch, M, N}, dt::f32, memory::dims{M * N, N, 1});
    if (g.bias) bias = memory::desc({1, 1, N}, dt::f32, memory::dims{N, N, 1});
  }
  primitive_attr attr;
  post_ops po;
  if (g.accumulate) po.append_sum(1.0f);
  std::shared_ptr<DnnlEntry> e;
  try {
#if DNNL_VERSION_MAJOR >= 3
    if (g.act == 1) po.append_eltwise(algorithm::eltwise_relu, 0.0f, 0.0f);
    attr.set_post_ops(po);
    matmul::primitive_desc pd = g.bias ? matmul::primitive_desc(dctx().eng, a, b, bias, c, attr)
                                       : matmul::primitive_desc(dctx().eng, a, b, c, attr);
#else
    if (g.act == 1) po.append_eltwise(1.0f, algorithm::eltwise_relu, 0.0f, 0.0f);
    attr.set_post_ops(po);
    matmul::desc d = g.bias ? matmul::desc(a, b, bias, c) : matmul::desc(a, b, c);
    matmul::primitive_desc pd(d, attr, dctx().eng);
#endif
    e = std::make_shared<DnnlEntry>(DnnlEntry{true, matmul(pd), a, b, c, bias, pd.impl_info_str()});
  } catch (const dnnl::error&) {
    // oneDNN implements bf16 matmul only on CPUs with AVX-512 (natively with AVX512-BF16 or AMX).
    if (!g.bf16) throw;
    e = std::make_shared<DnnlEntry>(DnnlEntry{false, matmul(), a, b, c, bias, ""});
  }
  g_cache.emplace(key, e);
  return e;
}

// false when g is bf16 and oneDNN has no bf16 implementation for it.
static bool gemm_dnnl(const Gemm& g) {
  using namespace dnnl;
  std::shared_ptr<DnnlEntry> e = dnnl_entry(g);
  if (!e->ok) return false;
  DnnlCtx ctx = dctx();
  void* pa = const_cast<float*>(g.A);
  void* pb = const_cast<float*>(g.B);
  if (g.bf16) {
    // The inputs in bf16, converted here so that every caller keeps float32 storage.
    static thread_local std::vector<uint16_t> a16, b16;
    const i64 na = g.batchA * g.M * g.K, nb = g.batchB * g.K * g.N;
    uint16_t* qa = grow(a16, na);
    uint16_t* qb = grow(b16, nb);
    convert_pair(g.A, qa, na, g.B, qb, nb, bf16_run);
    pa = qa;
    pb = qb;
  }
  memory ma(e->a, ctx.eng, pa);
  memory mb(e->b, ctx.eng, pb);
  memory mc(e->c, ctx.eng, g.C);
  if (g.bias) {
    memory mbias(e->bias, ctx.eng, const_cast<float*>(g.bias));
    e->prim.execute(ctx.strm, {{DNNL_ARG_SRC, ma}, {DNNL_ARG_WEIGHTS, mb}, {DNNL_ARG_BIAS, mbias}, {DNNL_ARG_DST, mc}});
  } else {
    e->prim.execute(ctx.strm, {{DNNL_ARG_SRC, ma}, {DNNL_ARG_WEIGHTS, mb}, {DNNL_ARG_DST, mc}});
  }
  ctx.strm.wait();
  return true;
}

#endif

void gemm_dnnl_fault() {
#ifdef PN_HAVE_DNNL
  using namespace dnnl;
  using dt = memory::data_type;
  memory::desc a({2, 3}, dt::f32, memory::dims{3, 1});
  memory::desc b({4, 5}, dt::f32, memory::dims{5, 1});
  memory::desc c({2, 5}, dt::f32, memory::dims{5, 1});
#if DNNL_VERSION_MAJOR >= 3
  matmul::primitive_desc pd(dctx().eng, a, b, c);
#else
  matmul::primitive_desc pd(matmul::desc(a, b, c), dctx().eng);
#endif
  (void)pd;
  throw std::logic_error("oneDNN accepted a matmul of mismatched shapes");
#else
  throw std::runtime_error("oneDNN is not built in");
#endif
}

// ---------------------------------------------------------------- OpenBLAS
#ifdef PN_HAVE_BLAS
static void gemm_blas(const Gemm& g) {
  const i64 M = g.M, N = g.N, K = g.K;
  // cblas_sgemm takes int sizes.
  if (M > INT_MAX || N > INT_MAX || K > INT_MAX) throw std::length_error("matmul: a dimension exceeds OpenBLAS's int range");
  for (i64 b = 0; b < g.batch; b++) {
    const float* A = g.A + (g.batchA == 1 ? 0 : b) * M * K;
    const float* Bm = g.B + (g.batchB == 1 ? 0 : b) * K * N;
    float* C = g.C + b * M * N;
    float beta = g.accumulate ? 1.0f : 0.0f;
    if (g.bias) {
      if (!g.accumulate) {
        for (i64 i = 0; i < M; i++) std::memcpy(C + i * N, g.bias, N * sizeof(float));
      } else {
        for (i64 i = 0; i < M; i++)
          for (i64 j = 0; j < N; j++) C[i * N + j] += g.bias[j];
      }
      beta = 1.0f;
    }
    cblas_sgemm(CblasRowMajor, g.transA ? CblasTrans : CblasNoTrans, g.transB ? CblasTrans : CblasNoTrans, (int)M,
                (int)N, (int)K, 1.0f, A, g.transA ? (int)M : (int)K, Bm, g.transB ? (int)K : (int)N, beta, C, (int)N);
  }
  if (g.act == 1) {
    float* C = g.C;
    par_range(g.batch * M * N, EW_GRAIN, [&](i64 lo, i64 hi) {
#pragma omp simd
      for (i64 i = lo; i < hi; i++) C[i] = C[i] < 0 ? 0.0f : C[i];
    });
  }
}
#endif

// Runs a float32 product on a resolved engine; -1 when that engine is not built in.
static int run_f32(const Gemm& g, int engine) {
  switch (engine) {
#ifdef PN_HAVE_DNNL
    case GEMM_DNNL:
      gemm_dnnl(g);
      return GEMM_DNNL;
#endif
#ifdef PN_HAVE_BLAS
    case GEMM_BLAS:
      gemm_blas(g);
      return GEMM_BLAS;
#endif
    case GEMM_REF:
      gemm_ref(g);
      return GEMM_REF;
    default:
      return -1;
  }
}

// bf16 without a bf16 matmul: the float32 engine on inputs rounded to bf16.
static int gemm_bf16_emulated(const Gemm& g, int engine) {
  static thread_local std::vector<float> ra, rb;
  const i64 na = g.batchA * g.M * g.K, nb = g.batchB * g.K * g.N;
  Gemm h = g;
  h.bf16 = false;
  float* a = grow(ra, na);
  float* b = grow(rb, nb);
  convert_pair(g.A, a, na, g.B, b, nb, round_run);
  h.A = a;
  h.B = b;
  return run_f32(h, engine);
}

static int resolve_engine(const Gemm& g, int engine) {
  if (engine != GEMM_AUTO) return engine;
  engine = g_default[(g.transA ? 2 : 0) + (g.transB ? 1 : 0) + (g.batch > 1 ? 4 : 0)];
  if (engine == GEMM_AUTO) engine = have_dnnl() ? GEMM_DNNL : have_blas() ? GEMM_BLAS : GEMM_REF;
  if (engine == GEMM_DNNL && !have_dnnl()) engine = have_blas() ? GEMM_BLAS : GEMM_REF;
  if (engine == GEMM_BLAS && !have_blas()) engine = have_dnnl() ? GEMM_DNNL : GEMM_REF;
  return engine;
}

int gemm(const Gemm& g, int engine) {
  const i64 total = g.batch * g.M * g.N;
  if (total == 0) return GEMM_REF;
  if (g.K == 0) {
    // Empty reduction: C = bias (+C), activation.
    for (i64 i = 0; i < total; i++) {
      float v = (g.bias ? g.bias[i % g.N] : 0.0f) + (g.accumulate ? g.C[i] : 0.0f);
      if (g.act == 1 && v < 0) v = 0;
      g.C[i] = v;
    }
    return GEMM_REF;
  }
  engine = resolve_engine(g, engine);
  if (!g.bf16) return run_f32(g, engine);
#ifdef PN_HAVE_DNNL
  if (engine == GEMM_DNNL && gemm_dnnl(g)) return GEMM_DNNL;
#endif
  return gemm_bf16_emulated(g, engine);
}

std::string gemm_impl(i64 M, i64 N, i64 K, bool bf16) {
  Gemm g;  // a plain product of this shape (no data: only the kernel choice is asked)
  g.M = M;
  g.N = N;
  g.K = K;
  g.bf16 = bf16;
  const std::string rounded = " on bf16-rounded inputs (float32 products: no bf16 matmul here)";
  int engine = resolve_engine(g, GEMM_AUTO);
#ifdef PN_HAVE_DNNL
  if (engine == GEMM_DNNL) {
    std::shared_ptr<DnnlEntry> e = dnnl_entry(g);
    if (e->ok) return "oneDNN " + e->impl;
    g.bf16 = false;
    return "oneDNN " + dnnl_entry(g)->impl + rounded;
  }
#endif
  const std::string name = engine == GEMM_BLAS ? "OpenBLAS sgemm" : "plain loop";
  return bf16 ? name + rounded : name;
}

int gemm_or_throw(const Gemm& g, int engine, const char* what) {
  int used = gemm(g, engine);
  if (used < 0) throw std::runtime_error(std::string(what) + ": matrix-product engine " + std::to_string(engine) + " is not built in");
  return used;
}

}  // namespace pnative
