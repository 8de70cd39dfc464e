// Shared declarations for the persona native kernels.
#pragma once
#include <cstdint>
#include <cstddef>
#include <exception>
#include <string>
#include <vector>
#ifdef _OPENMP
#include <omp.h>
#endif

namespace pnative {

typedef int64_t i64;

static inline int max_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

// An exception must not leave an OpenMP region (the runtime would call std::terminate and end the
// process): each worker keeps the first one thrown, and the calling thread rethrows it after the
// region, where the addon's bindings turn it into a JavaScript error.
struct ParallelError {
  std::exception_ptr first;
  void capture() {
#pragma omp critical(pnative_parallel_error)
    {
      if (!first) first = std::current_exception();
    }
  }
  void rethrow() const {
    if (first) std::rethrow_exception(first);
  }
};

// Runs f(lo, hi) over [0, n) split into one contiguous range per thread (static partition,
// ranges aligned to 16 elements). Serial when n <= grain. Only for work whose result does not
// depend on the partition (element-wise work, or independent rows).
template <class F>
static inline void par_range(i64 n, i64 grain, F f) {
  int nt = max_threads();
  if (n <= grain || nt <= 1) {
    if (n > 0) f((i64)0, n);
    return;
  }
#ifdef _OPENMP
  ParallelError err;
#pragma omp parallel num_threads(nt)
  {
    int t = omp_get_thread_num(), T = omp_get_num_threads();
    i64 chunk = (n + T - 1) / T;
    chunk = (chunk + 15) & ~(i64)15;
    i64 lo = (i64)t * chunk, hi = lo + chunk < n ? lo + chunk : n;
    if (lo < hi) {
      try {
        f(lo, hi);
      } catch (...) {
        err.capture();
      }
    }
  }
  err.rethrow();
#endif
}

// Like par_range but over work items that each cost `cost` elements of work.
template <class F>
static inline void par_items(i64 items, i64 cost_per_item, i64 grain, F f) {
  int nt = max_threads();
  if (items <= 1 || items * cost_per_item <= grain || nt <= 1) {
    for (i64 i = 0; i < items; i++) f(i);
    return;
  }
#ifdef _OPENMP
  ParallelError err;
#pragma omp parallel for schedule(static) num_threads(nt)
  for (i64 i = 0; i < items; i++) {
    try {
      f(i);
    } catch (...) {
      err.capture();
    }
  }
  err.rethrow();
#endif
}

// Elements below which element-wise work stays on the calling thread.
static const i64 EW_GRAIN = 32768;

// ---------------------------------------------------------------- gemm
// C[b] = op(A[b]) @ op(B[b]) (+ bias[N]) (relu if act==1) (+ C if accumulate), row-major,
// contiguous. batchA/batchB are each 1 or batch (broadcast). With bf16, A and B are rounded to
// bfloat16 (round to nearest even) and multiplied with float32 accumulation into float32 C: oneDNN's
// bf16 matmul where it has one, else the float32 engine on the rounded values (the same numbers,
// since a product of two bf16 values is exact in float32; only the summation order differs).
// A product C = op(A) op(B) (+ bias, activation). The defaults are a plain one: one matrix, no
// transposes, no bias, no accumulation, no activation, float32 inputs; callers set what differs.
struct Gemm {
  const float* A = nullptr;
  const float* B = nullptr;
  float* C = nullptr;
  const float* bias = nullptr;
  i64 batch = 1, batchA = 1, batchB = 1, M = 0, N = 0, K = 0;
  bool transA = false, transB = false, accumulate = false;
  int act = 0;  // 0 none, 1 relu
  bool bf16 = false;
};
enum GemmEngine { GEMM_AUTO = 0, GEMM_DNNL = 1, GEMM_BLAS = 2, GEMM_REF = 3 };
// Returns the engine used, or -1 when the engine asked for is not compiled in. Throws (a
// std::exception) when the engine fails, e.g. oneDNN cannot create the primitive.
int gemm(const Gemm& g, int engine);
// gemm() that throws std::runtime_error instead of returning -1 (`what` names the caller).
int gemm_or_throw(const Gemm& g, int engine, const char* what);
bool have_dnnl();
bool have_blas();
// oneDNN's version as "major.minor.patch" (the library loaded), or "" without oneDNN.
const char* dnnl_version_string();
// Asks oneDNN for an impossible matmul (mismatched shapes), so it throws dnnl::error; throws
// std::runtime_error when oneDNN is not built in. For the addon's selfTest.
void gemm_dnnl_fault();
// Sets the default engine of one case; false when the case or the engine is out of range.
bool gemm_set_default(int op_case, int engine);
// What computes a plain row-major [M,K] @ [K,N] product with float32 output (bf16: bf16 inputs):
// oneDNN's implementation name ("brg:avx512_core_amx", ...), prefixed "oneDNN ", or the engine that
// runs without oneDNN, and for bf16 whether it is emulated. Creates (and caches) the primitive.
std::string gemm_impl(i64 M, i64 N, i64 K, bool bf16);

static const int GEMM_CASES = 8;

// ---------------------------------------------------------------- element-wise
enum BinOp { B_ADD = 0, B_SUB, B_MUL, B_DIV, B_MAX, B_MIN, B_SQDIFF };
enum UnOp {
  U_EXP = 0, U_LOG, U_TANH, U_SQRT, U_RSQRT, U_NEG, U_SQUARE, U_RECIP, U_ABS, U_RELU,
  U_SIGMOID, U_GELU
};
static const int BIN_OPS = B_SQDIFF + 1, UN_OPS = U_GELU + 1;
// Broadcast binary op; shapes are right-aligned (numpy/tfjs rules); out has the broadcast shape.
// The element-wise kernels allow in-place calls (out == a, y == x): each element is read before
// it is written, and no pointer is declared __restrict. An unknown op throws std::invalid_argument.
void binary(int op, const float* a, const std::vector<i64>& ashape, const float* b,
            const std::vector<i64>& bshape, float* out, const std::vector<i64>& oshape);
void unary(int op, const float* x, float* y, i64 n);
void addn(const std::vector<const float*>& xs, float* y, i64 n);
void select_op(const uint8_t* cond, const float* a, const float* b, float* out, i64 n);

// ---------------------------------------------------------------- layout / reduction
enum RedOp { R_SUM = 0, R_MAX, R_MIN, R_MEAN, R_PROD };
static const int RED_OPS = R_PROD + 1;
// x viewed as [outer, R, inner]; out [outer, inner].
void reduce(int op, const float* x, float* out, i64 outer, i64 R, i64 inner);
void softmax_rows(const float* x, float* y, i64 rows, i64 cols);
void log_softmax_rows(const float* x, float* y, i64 rows, i64 cols);
// 32-bit element copies (float32 or int32 data).
void transpose(const uint32_t* x, uint32_t* y, const std::vector<i64>& shape, const std::vector<i64>& perm);
void slice(const uint32_t* x, uint32_t* y, const std::vector<i64>& shape, const std::vector<i64>& begin,
           const std::vector<i64>& size);
// x viewed as [outer, total]; piece i gets columns [off_i, off_i + widths[i]).
void split_cols(const uint32_t* x, const std::vector<uint32_t*>& outs, i64 outer, const std::vector<i64>& widths);
void concat_cols(const std::vector<const uint32_t*>& ins, uint32_t* y, i64 outer, const std::vector<i64>& widths);
// Returns -1 when ok, else the position of the first out-of-range index.
i64 gather_rows(const uint32_t* x, const int32_t* idx, uint32_t* y, i64 rows, i64 row_size, i64 n_idx);
void segment_sum(const float* x, const int32_t* ids, float* y, i64 n_rows, i64 row_size, i64 n_seg);
// out[c] = sum over rows of x[r, c], deterministic (fixed chunks).
void col_sum(const float* x, float* out, i64 rows, i64 cols);

// ---------------------------------------------------------------- fused
void layer_norm(const float* x, const float* gamma, const float* beta, float eps, float* y, float* mean,
                float* rstd, i64 rows, i64 C);
void layer_norm_grad(const float* dy, const float* x, const float* gamma, const float* mean, const float* rstd,
                     float* dx, float* dgamma, float* dbeta, i64 rows, i64 C);
void gelu_fwd(const float* x, float* y, i64 n);
void gelu_bwd(const float* dy, const float* x, float* dx, i64 n);
// bf16: the products (scores, P v and their gradients) in bf16 with float32 accumulation (see Gemm);
// the softmax and everything else stay float32.
void attention_fwd(const float* qkv, float* out, float* probs, i64 B, i64 T, i64 C, i64 H, bool bf16);
void attention_bwd(const float* dout, const float* qkv, const float* probs, float* dqkv, i64 B, i64 T, i64 C,
                   i64 H, bool bf16);
// Returns the loss; dlogits may be null. Returns NaN-free result; bad target -> returns -1 via *bad.
double softmax_xent(const float* logits, const int32_t* targets, const float* weights, float* dlogits, i64 N,
                    i64 V, i64* bad);
i64 embedding_fwd(const int32_t* ids, const float* wte, const float* wpe, float* x, i64 B, i64 T, i64 C, i64 V);
i64 embedding_bwd(const float* dx, const int32_t* ids, float* dwte, float* dwpe, i64 B, i64 T, i64 C, i64 V);
struct AdamParam {
  float* p;
  const float* g;
  float* m;
  float* v;
  i64 n;
  bool decay;
};
void adamw(const std::vector<AdamParam>& ps, float lr, float beta1, float beta2, float eps, float wd, double step,
           float grad_scale);
double sum_squares(const std::vector<std::pair<const float*, i64>>& xs);

}  // namespace pnative
