// Node-API glue: every function takes typed arrays (inputs and preallocated outputs) and sizes,
// checks that the arrays are large enough, and calls the kernels in gemm.cc / ops.cc / fused.cc.
#include <napi.h>

#include <cstring>
#include <string>

#include "common.h"

using namespace pnative;

namespace {

struct Arr {
  void* p;
  size_t n;  // elements
};

Arr typed(const Napi::Env& env, const Napi::Value& v, napi_typedarray_type want, const char* what) {
  if (!v.IsTypedArray()) throw Napi::TypeError::New(env, std::string(what) + ": expected a typed array");
  Napi::TypedArray ta = v.As<Napi::TypedArray>();
  if (ta.TypedArrayType() != want) {
    // float32 and 32-bit integer data are interchangeable for pure copies (want == uint32).
    bool ok = want == napi_uint32_array &&
              (ta.TypedArrayType() == napi_float32_array || ta.TypedArrayType() == napi_int32_array);
    if (!ok) throw Napi::TypeError::New(env, std::string(what) + ": wrong typed array type");
  }
  uint8_t* base = static_cast<uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
  return {base, ta.ElementLength()};
}
float* F(const Napi::CallbackInfo& info, int i, i64 need, const char* what) {
  Arr a = typed(info.Env(), info[i], napi_float32_array, what);
  if ((i64)a.n < need) throw Napi::RangeError::New(info.Env(), std::string(what) + ": array too small");
  return static_cast<float*>(a.p);
}
float* Fopt(const Napi::CallbackInfo& info, int i, i64 need, const char* what) {
  if (info[i].IsNull() || info[i].IsUndefined()) return nullptr;
  return F(info, i, need, what);
}
int32_t* I32(const Napi::CallbackInfo& info, int i, i64 need, const char* what) {
  Arr a = typed(info.Env(), info[i], napi_int32_array, what);
  if ((i64)a.n < need) throw Napi::RangeError::New(info.Env(), std::string(what) + ": array too small");
  return static_cast<int32_t*>(a.p);
}
uint32_t* U32v(const Napi::Env& env, const Napi::Value& v, i64 need, const char* what) {
  Arr a = typed(env, v, napi_uint32_array, what);
  if ((i64)a.n < need) throw Napi::RangeError::New(env, std::string(what) + ": array too small");
  return static_cast<uint32_t*>(a.p);
}
uint32_t* U32(const Napi::CallbackInfo& info, int i, i64 need, const char* what) {
  return U32v(info.Env(), info[i], need, what);
}
i64 N(const Napi::CallbackInfo& info, int i) {
  if (!info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), "expected a number at argument " + std::to_string(i));
  return info[i].As<Napi::Number>().Int64Value();
}
double D(const Napi::CallbackInfo& info, int i) {
  if (!info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), "expected a number at argument " + std::to_string(i));
  return info[i].As<Napi::Number>().DoubleValue();
}
bool Bo(const Napi::CallbackInfo& info, int i) { return info[i].ToBoolean().Value(); }
std::vector<i64> Dims(const Napi::CallbackInfo& info, int i) {
  if (!info[i].IsArray()) throw Napi::TypeError::New(info.Env(), "expected an array of numbers");
  Napi::Array a = info[i].As<Napi::Array>();
  std::vector<i64> d(a.Length());
  for (uint32_t k = 0; k < a.Length(); k++) {
    i64 v = a.Get(k).As<Napi::Number>().Int64Value();
    if (v < 0) throw Napi::RangeError::New(info.Env(), "negative dimension");
    d[k] = v;
  }
  return d;
}
i64 Prod(const std::vector<i64>& d) {
  i64 p = 1;
  for (i64 v : d) p *= v;
  return p;
}
Napi::Array List(const Napi::CallbackInfo& info, int i) {
  if (!info[i].IsArray()) throw Napi::TypeError::New(info.Env(), "expected an array of typed arrays");
  return info[i].As<Napi::Array>();
}

Napi::Value Info(const Napi::CallbackInfo& info) {
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("dnnl", have_dnnl());
  o.Set("blas", have_blas());
  o.Set("threads", max_threads());
#ifdef _OPENMP
  o.Set("openmp", true);
#else
  o.Set("openmp", false);
#endif
  return o;
}

Napi::Value SetThreads(const Napi::CallbackInfo& info) {
#ifdef _OPENMP
  i64 n = N(info, 0);
  if (n > 0) omp_set_num_threads((int)n);
#endif
  return Napi::Number::New(info.Env(), max_threads());
}

Napi::Value SetGemmDefault(const Napi::CallbackInfo& info) {
  gemm_set_default((int)N(info, 0), (int)N(info, 1));
  return info.Env().Undefined();
}

// matmul(a, b, c, batch, batchA, batchB, M, N, K, transA, transB, bias|null, act, accumulate, engine) -> engine
Napi::Value Matmul(const Napi::CallbackInfo& info) {
  Gemm g;
  g.batch = N(info, 3);
  g.batchA = N(info, 4);
  g.batchB = N(info, 5);
  g.M = N(info, 6);
  g.N = N(info, 7);
  g.K = N(info, 8);
  g.transA = Bo(info, 9);
  g.transB = Bo(info, 10);
  g.act = (int)N(info, 12);
  g.accumulate = Bo(info, 13);
  if ((g.batchA != 1 && g.batchA != g.batch) || (g.batchB != 1 && g.batchB != g.batch))
    throw Napi::RangeError::New(info.Env(), "matmul: bad batch sizes");
  g.A = F(info, 0, g.batchA * g.M * g.K, "a");
  g.B = F(info, 1, g.batchB * g.K * g.N, "b");
  g.C = F(info, 2, g.batch * g.M * g.N, "c");
  g.bias = Fopt(info, 11, g.N, "bias");
  int used;
  try {
    used = gemm(g, (int)N(info, 14));
  } catch (const std::exception& e) {
    throw Napi::Error::New(info.Env(), std::string("matmul failed: ") + e.what());
  }
  if (used < 0) throw Napi::Error::New(info.Env(), "matmul: engine not available");
  return Napi::Number::New(info.Env(), used);
}

void RunGemm(const Napi::Env& env, const Gemm& g) {
  int used;
  try {
    used = gemm(g, GEMM_AUTO);
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, std::string("matmul failed: ") + e.what());
  }
  if (used < 0) throw Napi::Error::New(env, "matmul: no engine");
}
Gemm Mk(const float* A, const float* B, float* C, i64 M, i64 Nn, i64 K, bool ta, bool tb, const float* bias, int act) {
  Gemm g;
  g.A = A;
  g.B = B;
  g.C = C;
  g.bias = bias;
  g.batch = g.batchA = g.batchB = 1;
  g.M = M;
  g.N = Nn;
  g.K = K;
  g.transA = ta;
  g.transB = tb;
  g.accumulate = false;
  g.act = act;
  return g;
}

// binary(op, a, aShape, b, bShape, out, outShape)
Napi::Value Binary(const Napi::CallbackInfo& info) {
  auto as = Dims(info, 2), bs = Dims(info, 4), os = Dims(info, 6);
  if (as.size() > os.size() || bs.size() > os.size()) throw Napi::RangeError::New(info.Env(), "binary: bad ranks");
  for (size_t k = 0; k < as.size(); k++) {
    i64 od = os[os.size() - as.size() + k];
    if (as[k] != 1 && as[k] != od) throw Napi::RangeError::New(info.Env(), "binary: shapes do not broadcast");
  }
  for (size_t k = 0; k < bs.size(); k++) {
    i64 od = os[os.size() - bs.size() + k];
    if (bs[k] != 1 && bs[k] != od) throw Napi::RangeError::New(info.Env(), "binary: shapes do not broadcast");
  }
  const float* a = F(info, 1, Prod(as), "a");
  const float* b = F(info, 3, Prod(bs), "b");
  float* o = F(info, 5, Prod(os), "out");
  binary((int)N(info, 0), a, as, b, bs, o, os);
  return info.Env().Undefined();
}

// unary(op, x, y)
Napi::Value Unary(const Napi::CallbackInfo& info) {
  Arr x = typed(info.Env(), info[1], napi_float32_array, "x");
  float* y = F(info, 2, (i64)x.n, "y");
  unary((int)N(info, 0), static_cast<float*>(x.p), y, (i64)x.n);
  return info.Env().Undefined();
}

// addn(list, y)
Napi::Value AddN(const Napi::CallbackInfo& info) {
  Napi::Array l = List(info, 0);
  Arr y = typed(info.Env(), info[1], napi_float32_array, "y");
  std::vector<const float*> xs;
  for (uint32_t k = 0; k < l.Length(); k++) {
    Arr a = typed(info.Env(), l.Get(k), napi_float32_array, "x");
    if (a.n < y.n) throw Napi::RangeError::New(info.Env(), "addn: array too small");
    xs.push_back(static_cast<float*>(a.p));
  }
  if (xs.empty()) throw Napi::RangeError::New(info.Env(), "addn: empty list");
  addn(xs, static_cast<float*>(y.p), (i64)y.n);
  return info.Env().Undefined();
}

// select(cond u8, a, b, out)
Napi::Value Select(const Napi::CallbackInfo& info) {
  Arr out = typed(info.Env(), info[3], napi_float32_array, "out");
  Arr c = typed(info.Env(), info[0], napi_uint8_array, "cond");
  if (c.n < out.n) throw Napi::RangeError::New(info.Env(), "select: cond too small");
  const float* a = F(info, 1, (i64)out.n, "a");
  const float* b = F(info, 2, (i64)out.n, "b");
  select_op(static_cast<uint8_t*>(c.p), a, b, static_cast<float*>(out.p), (i64)out.n);
  return info.Env().Undefined();
}

// reduce(op, x, out, outer, R, inner)
Napi::Value Reduce(const Napi::CallbackInfo& info) {
  i64 outer = N(info, 3), R = N(info, 4), inner = N(info, 5);
  const float* x = F(info, 1, outer * R * inner, "x");
  float* o = F(info, 2, outer * inner, "out");
  reduce((int)N(info, 0), x, o, outer, R, inner);
  return info.Env().Undefined();
}

// softmax(x, y, rows, cols, log)
Napi::Value Softmax(const Napi::CallbackInfo& info) {
  i64 rows = N(info, 2), cols = N(info, 3);
  const float* x = F(info, 0, rows * cols, "x");
  float* y = F(info, 1, rows * cols, "y");
  if (Bo(info, 4))
    log_softmax_rows(x, y, rows, cols);
  else
    softmax_rows(x, y, rows, cols);
  return info.Env().Undefined();
}

// transpose(x, y, shape, perm)
Napi::Value Transpose(const Napi::CallbackInfo& info) {
  auto shape = Dims(info, 2), perm = Dims(info, 3);
  if (perm.size() != shape.size()) throw Napi::RangeError::New(info.Env(), "transpose: bad perm");
  std::vector<bool> seen(shape.size(), false);
  for (i64 p : perm) {
    if (p < 0 || p >= (i64)shape.size() || seen[p]) throw Napi::RangeError::New(info.Env(), "transpose: bad perm");
    seen[p] = true;
  }
  i64 n = Prod(shape);
  transpose(U32(info, 0, n, "x"), U32(info, 1, n, "y"), shape, perm);
  return info.Env().Undefined();
}

// slice(x, y, shape, begin, size)
Napi::Value Slice(const Napi::CallbackInfo& info) {
  auto shape = Dims(info, 2), begin = Dims(info, 3), size = Dims(info, 4);
  if (begin.size() != shape.size() || size.size() != shape.size())
    throw Napi::RangeError::New(info.Env(), "slice: bad rank");
  for (size_t d = 0; d < shape.size(); d++)
    if (begin[d] + size[d] > shape[d]) throw Napi::RangeError::New(info.Env(), "slice: out of range");
  slice(U32(info, 0, Prod(shape), "x"), U32(info, 1, Prod(size), "y"), shape, begin, size);
  return info.Env().Undefined();
}

// splitCols(x, outs, outer, widths)
Napi::Value SplitCols(const Napi::CallbackInfo& info) {
  i64 outer = N(info, 2);
  auto widths = Dims(info, 3);
  Napi::Array l = List(info, 1);
  if (l.Length() != widths.size()) throw Napi::RangeError::New(info.Env(), "split: count mismatch");
  std::vector<uint32_t*> outs;
  i64 total = 0;
  for (uint32_t k = 0; k < l.Length(); k++) {
    outs.push_back(U32v(info.Env(), l.Get(k), outer * widths[k], "out"));
    total += widths[k];
  }
  split_cols(U32(info, 0, outer * total, "x"), outs, outer, widths);
  return info.Env().Undefined();
}

// concatCols(ins, y, outer, widths)
Napi::Value ConcatCols(const Napi::CallbackInfo& info) {
  i64 outer = N(info, 2);
  auto widths = Dims(info, 3);
  Napi::Array l = List(info, 0);
  if (l.Length() != widths.size()) throw Napi::RangeError::New(info.Env(), "concat: count mismatch");
  std::vector<const uint32_t*> ins;
  i64 total = 0;
  for (uint32_t k = 0; k < l.Length(); k++) {
    ins.push_back(U32v(info.Env(), l.Get(k), outer * widths[k], "in"));
    total += widths[k];
  }
  concat_cols(ins, U32(info, 1, outer * total, "y"), outer, widths);
  return info.Env().Undefined();
}

// gatherRows(x, idx, y, rows, rowSize) -> -1 | bad position
Napi::Value GatherRows(const Napi::CallbackInfo& info) {
  i64 rows = N(info, 3), rs = N(info, 4);
  Arr idx = typed(info.Env(), info[1], napi_int32_array, "indices");
  i64 n = (i64)idx.n;
  i64 bad = gather_rows(U32(info, 0, rows * rs, "x"), static_cast<int32_t*>(idx.p), U32(info, 2, n * rs, "y"), rows,
                        rs, n);
  return Napi::Number::New(info.Env(), (double)bad);
}

// segmentSum(x, ids, y, nRows, rowSize, nSeg)
Napi::Value SegmentSum(const Napi::CallbackInfo& info) {
  i64 nr = N(info, 3), rs = N(info, 4), ns = N(info, 5);
  segment_sum(F(info, 0, nr * rs, "x"), I32(info, 1, nr, "ids"), F(info, 2, ns * rs, "y"), nr, rs, ns);
  return info.Env().Undefined();
}

// colSum(x, out, rows, cols)
Napi::Value ColSum(const Napi::CallbackInfo& info) {
  i64 r = N(info, 2), c = N(info, 3);
  col_sum(F(info, 0, r * c, "x"), F(info, 1, c, "out"), r, c);
  return info.Env().Undefined();
}

// linear(x, w, b|null, y, M, K, N, transW): y = x w + b, w [K,N] (or [N,K] when transW: y = x w^T + b)
Napi::Value Linear(const Napi::CallbackInfo& info) {
  i64 M = N(info, 4), K = N(info, 5), Nn = N(info, 6);
  bool tw = info.Length() > 7 && Bo(info, 7);
  RunGemm(info.Env(), Mk(F(info, 0, M * K, "x"), F(info, 1, K * Nn, "w"), F(info, 3, M * Nn, "y"), M, Nn, K, false,
                         tw, Fopt(info, 2, Nn, "b"), 0));
  return info.Env().Undefined();
}

// linearGrad(dy, x, w, dx, dw, db|null, M, K, N, transW)
Napi::Value LinearGrad(const Napi::CallbackInfo& info) {
  i64 M = N(info, 6), K = N(info, 7), Nn = N(info, 8);
  bool tw = info.Length() > 9 && Bo(info, 9);
  const float* dy = F(info, 0, M * Nn, "dy");
  const float* x = F(info, 1, M * K, "x");
  const float* w = F(info, 2, K * Nn, "w");
  float* dx = F(info, 3, M * K, "dx");
  float* dw = F(info, 4, K * Nn, "dw");
  float* db = Fopt(info, 5, Nn, "db");
  if (!tw) {
    RunGemm(info.Env(), Mk(dy, w, dx, M, K, Nn, false, true, nullptr, 0));  // dx = dy w^T
    RunGemm(info.Env(), Mk(x, dy, dw, K, Nn, M, true, false, nullptr, 0));  // dw = x^T dy
  } else {
    RunGemm(info.Env(), Mk(dy, w, dx, M, K, Nn, false, false, nullptr, 0));  // dx = dy w   (w [N,K])
    RunGemm(info.Env(), Mk(dy, x, dw, Nn, K, M, true, false, nullptr, 0));  // dw = dy^T x ([N,K])
  }
  if (db) col_sum(dy, db, M, Nn);
  return info.Env().Undefined();
}

// linearGelu(x, w, b|null, y, h, M, K, N)
Napi::Value LinearGelu(const Napi::CallbackInfo& info) {
  i64 M = N(info, 5), K = N(info, 6), Nn = N(info, 7);
  float* h = F(info, 4, M * Nn, "h");
  float* y = F(info, 3, M * Nn, "y");
  RunGemm(info.Env(),
          Mk(F(info, 0, M * K, "x"), F(info, 1, K * Nn, "w"), h, M, Nn, K, false, false, Fopt(info, 2, Nn, "b"), 0));
  gelu_fwd(h, y, M * Nn);
  return info.Env().Undefined();
}

// linearGeluGrad(dy, x, w, h, dx, dw, db|null, M, K, N)
Napi::Value LinearGeluGrad(const Napi::CallbackInfo& info) {
  i64 M = N(info, 7), K = N(info, 8), Nn = N(info, 9);
  const float* dy = F(info, 0, M * Nn, "dy");
  const float* x = F(info, 1, M * K, "x");
  const float* w = F(info, 2, K * Nn, "w");
  const float* h = F(info, 3, M * Nn, "h");
  float* dx = F(info, 4, M * K, "dx");
  float* dw = F(info, 5, K * Nn, "dw");
  float* db = Fopt(info, 6, Nn, "db");
  static thread_local std::vector<float> dh;  // scratch, per JS thread
  if ((i64)dh.size() < M * Nn) dh.resize(M * Nn);
  gelu_bwd(dy, h, dh.data(), M * Nn);
  RunGemm(info.Env(), Mk(dh.data(), w, dx, M, K, Nn, false, true, nullptr, 0));
  RunGemm(info.Env(), Mk(x, dh.data(), dw, K, Nn, M, true, false, nullptr, 0));
  if (db) col_sum(dh.data(), db, M, Nn);
  return info.Env().Undefined();
}

// layerNorm(x, gamma, beta, eps, y, mean, rstd, rows, C)
Napi::Value LayerNorm(const Napi::CallbackInfo& info) {
  i64 rows = N(info, 7), C = N(info, 8);
  layer_norm(F(info, 0, rows * C, "x"), F(info, 1, C, "gamma"), F(info, 2, C, "beta"), (float)D(info, 3),
             F(info, 4, rows * C, "y"), F(info, 5, rows, "mean"), F(info, 6, rows, "rstd"), rows, C);
  return info.Env().Undefined();
}

// layerNormGrad(dy, x, gamma, mean, rstd, dx, dgamma, dbeta, rows, C)
Napi::Value LayerNormGrad(const Napi::CallbackInfo& info) {
  i64 rows = N(info, 8), C = N(info, 9);
  layer_norm_grad(F(info, 0, rows * C, "dy"), F(info, 1, rows * C, "x"), F(info, 2, C, "gamma"),
                  F(info, 3, rows, "mean"), F(info, 4, rows, "rstd"), F(info, 5, rows * C, "dx"),
                  F(info, 6, C, "dgamma"), F(info, 7, C, "dbeta"), rows, C);
  return info.Env().Undefined();
}

// gelu(x, y); geluGrad(dy, x, dx)
Napi::Value Gelu(const Napi::CallbackInfo& info) {
  Arr x = typed(info.Env(), info[0], napi_float32_array, "x");
  gelu_fwd(static_cast<float*>(x.p), F(info, 1, (i64)x.n, "y"), (i64)x.n);
  return info.Env().Undefined();
}
Napi::Value GeluGrad(const Napi::CallbackInfo& info) {
  Arr dy = typed(info.Env(), info[0], napi_float32_array, "dy");
  gelu_bwd(static_cast<float*>(dy.p), F(info, 1, (i64)dy.n, "x"), F(info, 2, (i64)dy.n, "dx"), (i64)dy.n);
  return info.Env().Undefined();
}

void CheckAttn(const Napi::Env& env, i64 C, i64 H) {
  if (H <= 0 || C % H != 0) throw Napi::RangeError::New(env, "attention: C must be divisible by nHead");
}
// attention(qkv, out, probs, B, T, C, H)
Napi::Value Attention(const Napi::CallbackInfo& info) {
  i64 B = N(info, 3), T = N(info, 4), C = N(info, 5), H = N(info, 6);
  CheckAttn(info.Env(), C, H);
  attention_fwd(F(info, 0, B * T * 3 * C, "qkv"), F(info, 1, B * T * C, "out"), F(info, 2, B * H * T * T, "probs"), B,
                T, C, H);
  return info.Env().Undefined();
}
// attentionGrad(dout, qkv, probs, dqkv, B, T, C, H)
Napi::Value AttentionGrad(const Napi::CallbackInfo& info) {
  i64 B = N(info, 4), T = N(info, 5), C = N(info, 6), H = N(info, 7);
  CheckAttn(info.Env(), C, H);
  attention_bwd(F(info, 0, B * T * C, "dout"), F(info, 1, B * T * 3 * C, "qkv"), F(info, 2, B * H * T * T, "probs"),
                F(info, 3, B * T * 3 * C, "dqkv"), B, T, C, H);
  return info.Env().Undefined();
}

// softmaxXent(logits, targets, weights, dlogits|null, N, V) -> loss
Napi::Value SoftmaxXent(const Napi::CallbackInfo& info) {
  i64 Nr = N(info, 4), V = N(info, 5);
  i64 bad;
  double loss = softmax_xent(F(info, 0, Nr * V, "logits"), I32(info, 1, Nr, "targets"), F(info, 2, Nr, "weights"),
                             Fopt(info, 3, Nr * V, "dlogits"), Nr, V, &bad);
  if (bad >= 0) throw Napi::RangeError::New(info.Env(), "softmaxXent: target out of range at row " + std::to_string(bad));
  return Napi::Number::New(info.Env(), loss);
}

// embedding(ids, wte, wpe, x, B, T, C, V, maxT)
Napi::Value Embedding(const Napi::CallbackInfo& info) {
  i64 B = N(info, 4), T = N(info, 5), C = N(info, 6), V = N(info, 7), maxT = N(info, 8);
  if (T > maxT) throw Napi::RangeError::New(info.Env(), "embedding: T exceeds the position table");
  i64 bad = embedding_fwd(I32(info, 0, B * T, "ids"), F(info, 1, V * C, "wte"), F(info, 2, maxT * C, "wpe"),
                          F(info, 3, B * T * C, "x"), B, T, C, V);
  if (bad >= 0) throw Napi::RangeError::New(info.Env(), "embedding: id out of range at " + std::to_string(bad));
  return info.Env().Undefined();
}
// embeddingGrad(dx, ids, dwte, dwpe, B, T, C, V, maxT)
Napi::Value EmbeddingGrad(const Napi::CallbackInfo& info) {
  i64 B = N(info, 4), T = N(info, 5), C = N(info, 6), V = N(info, 7), maxT = N(info, 8);
  if (T > maxT) throw Napi::RangeError::New(info.Env(), "embedding: T exceeds the position table");
  float* dwte = F(info, 2, V * C, "dwte");
  float* dwpe = F(info, 3, maxT * C, "dwpe");
  std::memset(dwte, 0, V * C * 4);
  std::memset(dwpe, 0, maxT * C * 4);
  i64 bad = embedding_bwd(F(info, 0, B * T * C, "dx"), I32(info, 1, B * T, "ids"), dwte, dwpe, B, T, C, V);
  if (bad >= 0) throw Napi::RangeError::New(info.Env(), "embedding: id out of range at " + std::to_string(bad));
  return info.Env().Undefined();
}

// adamw([p0,g0,m0,v0,...], decayMask[], lr, beta1, beta2, eps, wd, step, gradScale)
Napi::Value AdamW(const Napi::CallbackInfo& info) {
  Napi::Array l = List(info, 0);
  Napi::Array mask = List(info, 1);
  if (l.Length() % 4 != 0) throw Napi::RangeError::New(info.Env(), "adamw: list length must be a multiple of 4");
  std::vector<AdamParam> ps;
  for (uint32_t k = 0; k < l.Length(); k += 4) {
    Arr p = typed(info.Env(), l.Get(k), napi_float32_array, "p");
    AdamParam a;
    a.n = (i64)p.n;
    a.p = static_cast<float*>(p.p);
    Arr g = typed(info.Env(), l.Get(k + 1), napi_float32_array, "g");
    Arr m = typed(info.Env(), l.Get(k + 2), napi_float32_array, "m");
    Arr v = typed(info.Env(), l.Get(k + 3), napi_float32_array, "v");
    if (g.n != p.n || m.n != p.n || v.n != p.n)
      throw Napi::RangeError::New(info.Env(), "adamw: p, g, m, v sizes differ for parameter " + std::to_string(k / 4));
    a.g = static_cast<float*>(g.p);
    a.m = static_cast<float*>(m.p);
    a.v = static_cast<float*>(v.p);
    a.decay = (k / 4) < mask.Length() ? mask.Get(k / 4).ToBoolean().Value() : false;
    ps.push_back(a);
  }
  adamw(ps, (float)D(info, 2), (float)D(info, 3), (float)D(info, 4), (float)D(info, 5), (float)D(info, 6), D(info, 7),
        (float)D(info, 8));
  return info.Env().Undefined();
}

// sumSquares([x...]) -> number
Napi::Value SumSquares(const Napi::CallbackInfo& info) {
  Napi::Array l = List(info, 0);
  std::vector<std::pair<const float*, i64>> xs;
  for (uint32_t k = 0; k < l.Length(); k++) {
    Arr a = typed(info.Env(), l.Get(k), napi_float32_array, "x");
    xs.push_back({static_cast<float*>(a.p), (i64)a.n});
  }
  return Napi::Number::New(info.Env(), sum_squares(xs));
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
#define EXPORT(name, fn) exports.Set(name, Napi::Function::New(env, fn, name))
  EXPORT("info", Info);
  EXPORT("setThreads", SetThreads);
  EXPORT("setGemmDefault", SetGemmDefault);
  EXPORT("matmul", Matmul);
  EXPORT("binary", Binary);
  EXPORT("unary", Unary);
  EXPORT("addN", AddN);
  EXPORT("select", Select);
  EXPORT("reduce", Reduce);
  EXPORT("softmax", Softmax);
  EXPORT("transpose", Transpose);
  EXPORT("slice", Slice);
  EXPORT("splitCols", SplitCols);
  EXPORT("concatCols", ConcatCols);
  EXPORT("gatherRows", GatherRows);
  EXPORT("segmentSum", SegmentSum);
  EXPORT("colSum", ColSum);
  EXPORT("linear", Linear);
  EXPORT("linearGrad", LinearGrad);
  EXPORT("linearGelu", LinearGelu);
  EXPORT("linearGeluGrad", LinearGeluGrad);
  EXPORT("layerNorm", LayerNorm);
  EXPORT("layerNormGrad", LayerNormGrad);
  EXPORT("gelu", Gelu);
  EXPORT("geluGrad", GeluGrad);
  EXPORT("attention", Attention);
  EXPORT("attentionGrad", AttentionGrad);
  EXPORT("softmaxXent", SoftmaxXent);
  EXPORT("embedding", Embedding);
  EXPORT("embeddingGrad", EmbeddingGrad);
  EXPORT("adamw", AdamW);
  EXPORT("sumSquares", SumSquares);
#undef EXPORT
  return exports;
}

}  // namespace

NODE_API_MODULE(persona_native, Init)
