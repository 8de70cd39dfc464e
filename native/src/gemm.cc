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
  dnnl::matmul prim;
  dnnl::memory::desc a, b, c, bias;
};
typedef std::array<i64, 10> DKey;
static std::map<DKey, std::shared_ptr<DnnlEntry>> g_cache;
static std::mutex g_cache_mu;

static bool gemm_dnnl(const Gemm& g) {
  using namespace dnnl;
  using dt = memory::data_type;
  const i64 M = g.M, N = g.N, K = g.K;
  bool batched = g.batch > 1;
  DKey key = {g.batchA, g.batchB, M, N, K, g.transA, g.transB, g.bias != nullptr, g.act, g.accumulate};
  std::shared_ptr<DnnlEntry> e;
  {
    std::lock_guard<std::mutex> lk(g_cache_mu);
    auto it = g_cache.find(key);
    if (it == g_cache.end()) {
      if (g_cache.size() >= 4096) g_cache.clear();  // bound the cache (many distinct shapes, e.g. sampling)
      memory::desc a, b, c, bias;
      if (!batched) {
        a = memory::desc({M, K}, dt::f32, g.transA ? memory::dims{1, M} : memory::dims{K, 1});
        b = memory::desc({K, N}, dt::f32, g.transB ? memory::dims{1, K} : memory::dims{N, 1});
        c = memory::desc({M, N}, dt::f32, memory::dims{N, 1});
        if (g.bias) bias = memory::desc({1, N}, dt::f32, memory::dims{N, 1});
      } else {
        a = memory::desc({g.batchA, M, K}, dt::f32,
                         g.transA ? memory::dims{M * K, 1, M} : memory::dims{M * K, K, 1});
        b = memory::desc({g.batchB, K, N}, dt::f32,
                         g.transB ? memory::dims{K * N, 1, K} : memory::dims{K * N, N, 1});
        c = memory::desc({g.batch, M, N}, dt::f32, memory::dims{M * N, N, 1});
        if (g.bias) bias = memory::desc({1, 1, N}, dt::f32, memory::dims{N, N, 1});
      }
      primitive_attr attr;
      post_ops po;
      if (g.accumulate) po.append_sum(1.0f);
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
      it = g_cache.emplace(key, std::make_shared<DnnlEntry>(DnnlEntry{matmul(pd), a, b, c, bias})).first;
    }
    e = it->second;
  }
  DnnlCtx ctx = dctx();
  memory ma(e->a, ctx.eng, const_cast<float*>(g.A));
  memory mb(e->b, ctx.eng, const_cast<float*>(g.B));
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
  if (engine == GEMM_AUTO) {
    engine = g_default[(g.transA ? 2 : 0) + (g.transB ? 1 : 0) + (g.batch > 1 ? 4 : 0)];
    if (engine == GEMM_AUTO) engine = have_dnnl() ? GEMM_DNNL : have_blas() ? GEMM_BLAS : GEMM_REF;
    if (engine == GEMM_DNNL && !have_dnnl()) engine = have_blas() ? GEMM_BLAS : GEMM_REF;
    if (engine == GEMM_BLAS && !have_blas()) engine = have_dnnl() ? GEMM_DNNL : GEMM_REF;
  }
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

int gemm_or_throw(const Gemm& g, int engine, const char* what) {
  int used = gemm(g, engine);
  if (used < 0) throw std::runtime_error(std::string(what) + ": matrix-product engine " + std::to_string(engine) + " is not built in");
  return used;
}

}  // namespace pnative
