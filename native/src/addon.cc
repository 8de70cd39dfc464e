// Node-API glue: every function takes typed arrays (inputs and preallocated outputs) and sizes,
// checks them, and calls the kernels in gemm.cc / ops.cc / fused.cc.
//
// Each function is declared once in BINDINGS below with its arguments by name, in order (the
// TypeScript side's ADDON_SIGNATURES in src/backend/native/contracts.ts; `signatures()` reports
// this table and a test compares the two). Bodies read their arguments by those names, and a call
// with another number of arguments is refused.
//
// Nothing a caller passes can take the process down: every size is a non-negative integer whose
// products are checked for overflow before the arrays' lengths are compared with them, op codes
// are range-checked, and every C++ exception (a bad size, std::bad_alloc, a oneDNN error, one
// thrown inside an OpenMP region, see ParallelError) becomes a JavaScript exception naming the
// function.
#include <napi.h>

#include <cmath>
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "common.h"

using namespace pnative;

namespace {

// Largest rank of a shape argument, largest integer a double holds exactly.
const size_t MAX_RANK = 16;
const double MAX_SIZE = 9007199254740992.0;  // 2^53

struct Call;
typedef Napi::Value (*Body)(Call&);
struct Binding {
  const char* name;
  std::vector<const char*> args;
  Body body;
};

struct Arr {
  void* p;
  size_t n;  // elements
};

// One call of a binding: its arguments, read and checked by name.
struct Call {
  const Napi::CallbackInfo& info;
  const Binding& b;
  Napi::Env env;

  Call(const Napi::CallbackInfo& i, const Binding& bd) : info(i), b(bd), env(i.Env()) {}

  std::string at(const char* arg) const { return std::string(b.name) + ": " + arg; }
  [[noreturn]] void range(const std::string& msg) const { throw Napi::RangeError::New(env, std::string(b.name) + ": " + msg); }
  [[noreturn]] void type(const std::string& msg) const { throw Napi::TypeError::New(env, std::string(b.name) + ": " + msg); }

  void check_arity() const {
    if (info.Length() == b.args.size()) return;
    std::string names;
    for (const char* a : b.args) names += (names.empty() ? "" : ", ") + std::string(a);
    type("expected " + std::to_string(b.args.size()) + " arguments (" + names + "), got " + std::to_string(info.Length()));
  }
  Napi::Value arg(const char* name) const {
    for (size_t k = 0; k < b.args.size(); k++)
      if (std::strcmp(b.args[k], name) == 0) return info[k];
    // A body reading an argument its signature lacks: a bug in this file, reported, not fatal.
    throw std::logic_error(std::string("no argument '") + name + "' in the signature");
  }

  // A non-negative integer (a size or a count).
  i64 size(const char* a) const {
    Napi::Value v = arg(a);
    if (!v.IsNumber()) type(std::string(a) + " must be a number");
    double d = v.As<Napi::Number>().DoubleValue();
    if (!(d >= 0) || d != std::floor(d) || d > MAX_SIZE) range(std::string(a) + " must be a non-negative integer, got " + std::to_string(d));
    return (i64)d;
  }
  // An integer code in [0, n).
  int code(const char* a, int n) const {
    i64 v = size(a);
    if (v >= n) range(std::string(a) + " " + std::to_string(v) + " is out of range [0, " + std::to_string(n) + ")");
    return (int)v;
  }
  double num(const char* a) const {
    Napi::Value v = arg(a);
    if (!v.IsNumber()) type(std::string(a) + " must be a number");
    double d = v.As<Napi::Number>().DoubleValue();
    if (!std::isfinite(d)) range(std::string(a) + " must be finite");
    return d;
  }
  bool flag(const char* a) const {
    Napi::Value v = arg(a);
    if (!v.IsBoolean()) type(std::string(a) + " must be a boolean");
    return v.As<Napi::Boolean>().Value();
  }
  // Checked product of sizes.
  i64 mul(std::initializer_list<i64> xs) const {
    i64 p = 1;
    for (i64 x : xs)
      if (__builtin_mul_overflow(p, x, &p)) range("sizes overflow (their product exceeds 2^63)");
    return p;
  }

  Arr typed_value(const Napi::Value& v, napi_typedarray_type want, const std::string& what) const {
    if (!v.IsTypedArray()) throw Napi::TypeError::New(env, what + ": expected a typed array");
    Napi::TypedArray ta = v.As<Napi::TypedArray>();
    if (ta.TypedArrayType() != want) {
      // float32 and 32-bit integer data are interchangeable for pure copies (want == uint32).
      bool ok = want == napi_uint32_array &&
                (ta.TypedArrayType() == napi_float32_array || ta.TypedArrayType() == napi_int32_array);
      if (!ok) throw Napi::TypeError::New(env, what + ": wrong typed array type");
    }
    uint8_t* base = static_cast<uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
    return {base, ta.ElementLength()};
  }
  Arr typed(const char* a, napi_typedarray_type want) const { return typed_value(arg(a), want, at(a)); }
  void need(const Arr& x, i64 n, const std::string& what) const {
    if ((i64)x.n < n) throw Napi::RangeError::New(env, what + ": array too small (" + std::to_string(x.n) + " < " + std::to_string(n) + ")");
  }
  float* f32(const char* a, i64 n) const {
    Arr x = typed(a, napi_float32_array);
    need(x, n, at(a));
    return static_cast<float*>(x.p);
  }
  float* f32_opt(const char* a, i64 n) const {
    Napi::Value v = arg(a);
    if (v.IsNull() || v.IsUndefined()) return nullptr;
    return f32(a, n);
  }
  int32_t* i32(const char* a, i64 n) const {
    Arr x = typed(a, napi_int32_array);
    need(x, n, at(a));
    return static_cast<int32_t*>(x.p);
  }
  uint32_t* u32_value(const Napi::Value& v, i64 n, const std::string& what) const {
    Arr x = typed_value(v, napi_uint32_array, what);
    need(x, n, what);
    return static_cast<uint32_t*>(x.p);
  }
  uint32_t* u32(const char* a, i64 n) const { return u32_value(arg(a), n, at(a)); }
  // A shape: an array of non-negative integers, rank <= MAX_RANK.
  std::vector<i64> dims(const char* a) const {
    Napi::Value v = arg(a);
    if (!v.IsArray()) type(std::string(a) + " must be an array of sizes");
    Napi::Array arr = v.As<Napi::Array>();
    if (arr.Length() > MAX_RANK) range(std::string(a) + " has rank " + std::to_string(arr.Length()) + " > " + std::to_string(MAX_RANK));
    std::vector<i64> d(arr.Length());
    for (uint32_t k = 0; k < arr.Length(); k++) {
      Napi::Value e = arr.Get(k);
      if (!e.IsNumber()) type(std::string(a) + " must hold numbers");
      double x = e.As<Napi::Number>().DoubleValue();
      if (!(x >= 0) || x != std::floor(x) || x > MAX_SIZE) range(std::string(a) + " holds a negative or non-integer size");
      d[k] = (i64)x;
    }
    return d;
  }
  i64 prod(const std::vector<i64>& d) const {
    i64 p = 1;
    for (i64 x : d)
      if (__builtin_mul_overflow(p, x, &p)) range("sizes overflow (their product exceeds 2^63)");
    return p;
  }
  Napi::Array list(const char* a) const {
    Napi::Value v = arg(a);
    if (!v.IsArray()) type(std::string(a) + " must be an array");
    return v.As<Napi::Array>();
  }
};

Gemm Mk(const float* A, const float* B, float* C, i64 M, i64 Nn, i64 K, bool ta, bool tb, const float* bias, int act,
        bool bf16) {
  Gemm g;
  g.A = A;
  g.B = B;
  g.C = C;
  g.bias = bias;
  g.M = M;
  g.N = Nn;
  g.K = K;
  g.transA = ta;
  g.transB = tb;
  g.act = act;
  g.bf16 = bf16;
  return g;
}

// ---------------------------------------------------------------- introspection
Napi::Value Info(Call& c) {
  Napi::Object o = Napi::Object::New(c.env);
  o.Set("dnnl", have_dnnl());
  o.Set("dnnlVersion", dnnl_version_string());
  o.Set("blas", have_blas());
  o.Set("threads", max_threads());
#ifdef _OPENMP
  o.Set("openmp", true);
#else
  o.Set("openmp", false);
#endif
  return o;
}

Napi::Value Signatures(Call& c);

Napi::Value OpCodes(Call& c) {
  auto table = [&](std::initializer_list<std::pair<const char*, int>> kv) {
    Napi::Object o = Napi::Object::New(c.env);
    for (auto& e : kv) o.Set(e.first, e.second);
    return o;
  };
  Napi::Object o = Napi::Object::New(c.env);
  o.Set("binary", table({{"Add", B_ADD}, {"Sub", B_SUB}, {"Multiply", B_MUL}, {"RealDiv", B_DIV}, {"Maximum", B_MAX},
                         {"Minimum", B_MIN}, {"SquaredDifference", B_SQDIFF}}));
  o.Set("unary", table({{"Exp", U_EXP}, {"Log", U_LOG}, {"Tanh", U_TANH}, {"Sqrt", U_SQRT}, {"Rsqrt", U_RSQRT},
                        {"Neg", U_NEG}, {"Square", U_SQUARE}, {"Reciprocal", U_RECIP}, {"Abs", U_ABS}, {"Relu", U_RELU},
                        {"Sigmoid", U_SIGMOID}, {"Gelu", U_GELU}}));
  o.Set("reduce", table({{"Sum", R_SUM}, {"Max", R_MAX}, {"Min", R_MIN}, {"Mean", R_MEAN}, {"Prod", R_PROD}}));
  o.Set("gemmEngine", table({{"auto", GEMM_AUTO}, {"dnnl", GEMM_DNNL}, {"blas", GEMM_BLAS}, {"loop", GEMM_REF}}));
  o.Set("matmulAct", table({{"none", 0}, {"relu", 1}}));
  return o;
}

// selfTest(fault): raises one kind of native failure, to check that it reaches JavaScript as an
// exception and the process lives on.
Napi::Value SelfTest(Call& c) {
  Napi::Value v = c.arg("fault");
  if (!v.IsString()) c.type("fault must be a string");
  std::string f = v.As<Napi::String>().Utf8Value();
  if (f == "bad_alloc") throw std::bad_alloc();
  if (f == "std") throw std::runtime_error("self-test exception");
  if (f == "unknown") throw 42;
  if (f == "parallel") {
    // Thrown on a worker thread when there is more than one (items are split statically).
    par_items(64, 1 << 20, 0, [](i64 i) {
      if (i == 63) throw std::runtime_error("self-test exception in a parallel region");
    });
    return c.env.Undefined();
  }
  if (f == "dnnl") {
    gemm_dnnl_fault();
    return c.env.Undefined();
  }
  c.range("unknown fault '" + f + "' (bad_alloc, std, unknown, parallel, dnnl)");
}

Napi::Value SetThreads(Call& c) {
  i64 n = c.size("n");
#ifdef _OPENMP
  if (n > 0) omp_set_num_threads((int)std::min<i64>(n, 1 << 16));
#else
  (void)n;
#endif
  return Napi::Number::New(c.env, max_threads());
}

Napi::Value SetGemmDefault(Call& c) {
  if (!gemm_set_default(c.code("opCase", GEMM_CASES), c.code("engine", GEMM_REF + 1))) c.range("bad case or engine");
  return c.env.Undefined();
}

// ---------------------------------------------------------------- products
Napi::Value Matmul(Call& c) {
  Gemm g;
  g.batch = c.size("batch");
  g.batchA = c.size("batchA");
  g.batchB = c.size("batchB");
  g.M = c.size("M");
  g.N = c.size("N");
  g.K = c.size("K");
  g.transA = c.flag("transA");
  g.transB = c.flag("transB");
  g.act = c.code("act", 2);
  g.accumulate = c.flag("accumulate");
  g.bf16 = false;  // tfjs's MatMul kernels are float32; bf16 is for the fused training kernels
  int engine = c.code("engine", GEMM_REF + 1);
  if ((g.batchA != 1 && g.batchA != g.batch) || (g.batchB != 1 && g.batchB != g.batch)) c.range("bad batch sizes");
  g.A = c.f32("a", c.mul({g.batchA, g.M, g.K}));
  g.B = c.f32("b", c.mul({g.batchB, g.K, g.N}));
  g.C = c.f32("c", c.mul({g.batch, g.M, g.N}));
  g.bias = c.f32_opt("bias", g.N);
  int used = gemm(g, engine);
  if (used < 0) c.range("engine " + std::to_string(engine) + " is not built in");
  return Napi::Number::New(c.env, used);
}

Napi::Value Linear(Call& c) {
  i64 M = c.size("M"), K = c.size("K"), Nn = c.size("N");
  bool tw = c.flag("transW"), bf = c.flag("bf16");
  gemm_or_throw(Mk(c.f32("x", c.mul({M, K})), c.f32("w", c.mul({K, Nn})), c.f32("y", c.mul({M, Nn})), M, Nn, K, false, tw,
                   c.f32_opt("b", Nn), 0, bf),
                GEMM_AUTO, "linear");
  return c.env.Undefined();
}

Napi::Value LinearGrad(Call& c) {
  i64 M = c.size("M"), K = c.size("K"), Nn = c.size("N");
  bool tw = c.flag("transW"), bf = c.flag("bf16");
  const float* dy = c.f32("dy", c.mul({M, Nn}));
  const float* x = c.f32("x", c.mul({M, K}));
  const float* w = c.f32("w", c.mul({K, Nn}));
  float* dx = c.f32("dx", c.mul({M, K}));
  float* dw = c.f32("dw", c.mul({K, Nn}));
  float* db = c.f32_opt("db", Nn);
  if (!tw) {
    gemm_or_throw(Mk(dy, w, dx, M, K, Nn, false, true, nullptr, 0, bf), GEMM_AUTO, "linearGrad");  // dx = dy w^T
    gemm_or_throw(Mk(x, dy, dw, K, Nn, M, true, false, nullptr, 0, bf), GEMM_AUTO, "linearGrad");  // dw = x^T dy
  } else {
    gemm_or_throw(Mk(dy, w, dx, M, K, Nn, false, false, nullptr, 0, bf), GEMM_AUTO, "linearGrad");  // dx = dy w   (w [N,K])
    gemm_or_throw(Mk(dy, x, dw, Nn, K, M, true, false, nullptr, 0, bf), GEMM_AUTO, "linearGrad");  // dw = dy^T x ([N,K])
  }
  if (db) col_sum(dy, db, M, Nn);
  return c.env.Undefined();
}

Napi::Value LinearGelu(Call& c) {
  i64 M = c.size("M"), K = c.size("K"), Nn = c.size("N");
  i64 MN = c.mul({M, Nn});
  float* h = c.f32("h", MN);
  float* y = c.f32("y", MN);
  bool bf = c.flag("bf16");
  gemm_or_throw(Mk(c.f32("x", c.mul({M, K})), c.f32("w", c.mul({K, Nn})), h, M, Nn, K, false, false, c.f32_opt("b", Nn), 0, bf),
                GEMM_AUTO, "linearGelu");
  gelu_fwd(h, y, MN);
  return c.env.Undefined();
}

Napi::Value LinearGeluGrad(Call& c) {
  i64 M = c.size("M"), K = c.size("K"), Nn = c.size("N");
  i64 MN = c.mul({M, Nn});
  const float* dy = c.f32("dy", MN);
  const float* x = c.f32("x", c.mul({M, K}));
  const float* w = c.f32("w", c.mul({K, Nn}));
  const float* h = c.f32("h", MN);
  float* dx = c.f32("dx", c.mul({M, K}));
  float* dw = c.f32("dw", c.mul({K, Nn}));
  float* db = c.f32_opt("db", Nn);
  bool bf = c.flag("bf16");
  static thread_local std::vector<float> dh;  // scratch, per JS thread
  if ((i64)dh.size() < MN) dh.resize(MN);
  gelu_bwd(dy, h, dh.data(), MN);
  gemm_or_throw(Mk(dh.data(), w, dx, M, K, Nn, false, true, nullptr, 0, bf), GEMM_AUTO, "linearGeluGrad");
  gemm_or_throw(Mk(x, dh.data(), dw, K, Nn, M, true, false, nullptr, 0, bf), GEMM_AUTO, "linearGeluGrad");
  if (db) col_sum(dh.data(), db, M, Nn);
  return c.env.Undefined();
}

// matmulImpl(M, N, K, bf16): what computes an [M,K] @ [K,N] product here (oneDNN's kernel name,
// e.g. "oneDNN brg:avx512_core_amx"), for the benchmark's description of the machine.
Napi::Value MatmulImpl(Call& c) {
  i64 M = c.size("M"), Nn = c.size("N"), K = c.size("K");
  if (M == 0 || Nn == 0 || K == 0) c.range("M, N and K must be positive");
  return Napi::String::New(c.env, gemm_impl(M, Nn, K, c.flag("bf16")));
}

// ---------------------------------------------------------------- element-wise
Napi::Value Binary(Call& c) {
  int op = c.code("op", BIN_OPS);
  auto as = c.dims("aShape"), bs = c.dims("bShape"), os = c.dims("outShape");
  if (as.size() > os.size() || bs.size() > os.size()) c.range("bad ranks");
  for (size_t k = 0; k < as.size(); k++) {
    i64 od = os[os.size() - as.size() + k];
    if (as[k] != 1 && as[k] != od) c.range("shapes do not broadcast");
  }
  for (size_t k = 0; k < bs.size(); k++) {
    i64 od = os[os.size() - bs.size() + k];
    if (bs[k] != 1 && bs[k] != od) c.range("shapes do not broadcast");
  }
  const float* a = c.f32("a", c.prod(as));
  const float* b = c.f32("b", c.prod(bs));
  float* o = c.f32("out", c.prod(os));
  binary(op, a, as, b, bs, o, os);
  return c.env.Undefined();
}

Napi::Value Unary(Call& c) {
  int op = c.code("op", UN_OPS);
  Arr x = c.typed("x", napi_float32_array);
  float* y = c.f32("y", (i64)x.n);
  unary(op, static_cast<float*>(x.p), y, (i64)x.n);
  return c.env.Undefined();
}

Napi::Value AddN(Call& c) {
  Napi::Array l = c.list("xs");
  Arr y = c.typed("y", napi_float32_array);
  std::vector<const float*> xs;
  for (uint32_t k = 0; k < l.Length(); k++) {
    Arr a = c.typed_value(l.Get(k), napi_float32_array, c.at("xs"));
    c.need(a, (i64)y.n, c.at("xs"));
    xs.push_back(static_cast<float*>(a.p));
  }
  if (xs.empty()) c.range("empty list");
  addn(xs, static_cast<float*>(y.p), (i64)y.n);
  return c.env.Undefined();
}

Napi::Value Select(Call& c) {
  Arr out = c.typed("out", napi_float32_array);
  Arr cond = c.typed("cond", napi_uint8_array);
  c.need(cond, (i64)out.n, c.at("cond"));
  const float* a = c.f32("a", (i64)out.n);
  const float* b = c.f32("b", (i64)out.n);
  select_op(static_cast<uint8_t*>(cond.p), a, b, static_cast<float*>(out.p), (i64)out.n);
  return c.env.Undefined();
}

// ---------------------------------------------------------------- reductions, softmax
Napi::Value Reduce(Call& c) {
  int op = c.code("op", RED_OPS);
  i64 outer = c.size("outer"), R = c.size("R"), inner = c.size("inner");
  const float* x = c.f32("x", c.mul({outer, R, inner}));
  float* o = c.f32("out", c.mul({outer, inner}));
  reduce(op, x, o, outer, R, inner);
  return c.env.Undefined();
}

Napi::Value Softmax(Call& c) {
  i64 rows = c.size("rows"), cols = c.size("cols");
  i64 n = c.mul({rows, cols});
  const float* x = c.f32("x", n);
  float* y = c.f32("y", n);
  if (c.flag("log"))
    log_softmax_rows(x, y, rows, cols);
  else
    softmax_rows(x, y, rows, cols);
  return c.env.Undefined();
}

Napi::Value ColSum(Call& c) {
  i64 r = c.size("rows"), cols = c.size("cols");
  col_sum(c.f32("x", c.mul({r, cols})), c.f32("out", cols), r, cols);
  return c.env.Undefined();
}

// ---------------------------------------------------------------- layout
Napi::Value Transpose(Call& c) {
  auto shape = c.dims("shape"), perm = c.dims("perm");
  if (perm.size() != shape.size()) c.range("bad perm");
  std::vector<bool> seen(shape.size(), false);
  for (i64 p : perm) {
    if (p >= (i64)shape.size() || seen[p]) c.range("bad perm");
    seen[p] = true;
  }
  i64 n = c.prod(shape);
  transpose(c.u32("x", n), c.u32("y", n), shape, perm);
  return c.env.Undefined();
}

Napi::Value Slice(Call& c) {
  auto shape = c.dims("shape"), begin = c.dims("begin"), size = c.dims("size");
  if (begin.size() != shape.size() || size.size() != shape.size()) c.range("bad rank");
  for (size_t d = 0; d < shape.size(); d++)
    if (begin[d] + size[d] > shape[d]) c.range("out of range");
  slice(c.u32("x", c.prod(shape)), c.u32("y", c.prod(size)), shape, begin, size);
  return c.env.Undefined();
}

Napi::Value SplitCols(Call& c) {
  i64 outer = c.size("outer");
  auto widths = c.dims("widths");
  Napi::Array l = c.list("outs");
  if (l.Length() != widths.size()) c.range("count mismatch");
  std::vector<uint32_t*> outs;
  i64 total = 0;
  for (uint32_t k = 0; k < l.Length(); k++) {
    outs.push_back(c.u32_value(l.Get(k), c.mul({outer, widths[k]}), c.at("outs")));
    if (__builtin_add_overflow(total, widths[k], &total)) c.range("sizes overflow");
  }
  split_cols(c.u32("x", c.mul({outer, total})), outs, outer, widths);
  return c.env.Undefined();
}

Napi::Value ConcatCols(Call& c) {
  i64 outer = c.size("outer");
  auto widths = c.dims("widths");
  Napi::Array l = c.list("ins");
  if (l.Length() != widths.size()) c.range("count mismatch");
  std::vector<const uint32_t*> ins;
  i64 total = 0;
  for (uint32_t k = 0; k < l.Length(); k++) {
    ins.push_back(c.u32_value(l.Get(k), c.mul({outer, widths[k]}), c.at("ins")));
    if (__builtin_add_overflow(total, widths[k], &total)) c.range("sizes overflow");
  }
  concat_cols(ins, c.u32("y", c.mul({outer, total})), outer, widths);
  return c.env.Undefined();
}

Napi::Value GatherRows(Call& c) {
  i64 rows = c.size("rows"), rs = c.size("rowSize");
  Arr idx = c.typed("indices", napi_int32_array);
  i64 n = (i64)idx.n;
  i64 bad = gather_rows(c.u32("x", c.mul({rows, rs})), static_cast<int32_t*>(idx.p), c.u32("y", c.mul({n, rs})), rows, rs, n);
  return Napi::Number::New(c.env, (double)bad);
}

Napi::Value SegmentSum(Call& c) {
  i64 nr = c.size("nRows"), rs = c.size("rowSize"), ns = c.size("nSeg");
  segment_sum(c.f32("x", c.mul({nr, rs})), c.i32("ids", nr), c.f32("y", c.mul({ns, rs})), nr, rs, ns);
  return c.env.Undefined();
}

// ---------------------------------------------------------------- fused training kernels
Napi::Value LayerNorm(Call& c) {
  i64 rows = c.size("rows"), C = c.size("C");
  i64 n = c.mul({rows, C});
  layer_norm(c.f32("x", n), c.f32("gamma", C), c.f32("beta", C), (float)c.num("eps"), c.f32("y", n), c.f32("mean", rows),
             c.f32("rstd", rows), rows, C);
  return c.env.Undefined();
}

Napi::Value LayerNormGrad(Call& c) {
  i64 rows = c.size("rows"), C = c.size("C");
  i64 n = c.mul({rows, C});
  layer_norm_grad(c.f32("dy", n), c.f32("x", n), c.f32("gamma", C), c.f32("mean", rows), c.f32("rstd", rows), c.f32("dx", n),
                  c.f32("dgamma", C), c.f32("dbeta", C), rows, C);
  return c.env.Undefined();
}

Napi::Value Gelu(Call& c) {
  Arr x = c.typed("x", napi_float32_array);
  gelu_fwd(static_cast<float*>(x.p), c.f32("y", (i64)x.n), (i64)x.n);
  return c.env.Undefined();
}

Napi::Value GeluGrad(Call& c) {
  Arr dy = c.typed("dy", napi_float32_array);
  gelu_bwd(static_cast<float*>(dy.p), c.f32("x", (i64)dy.n), c.f32("dx", (i64)dy.n), (i64)dy.n);
  return c.env.Undefined();
}

void CheckHeads(Call& c, i64 C, i64 H) {
  if (H <= 0 || C % H != 0) c.range("C must be divisible by H (the number of heads)");
}

Napi::Value Attention(Call& c) {
  i64 B = c.size("B"), T = c.size("T"), C = c.size("C"), H = c.size("H");
  CheckHeads(c, C, H);
  attention_fwd(c.f32("qkv", c.mul({B, T, 3, C})), c.f32("out", c.mul({B, T, C})), c.f32("probs", c.mul({B, H, T, T})), B, T, C, H,
                c.flag("bf16"));
  return c.env.Undefined();
}

Napi::Value AttentionGrad(Call& c) {
  i64 B = c.size("B"), T = c.size("T"), C = c.size("C"), H = c.size("H");
  CheckHeads(c, C, H);
  attention_bwd(c.f32("dout", c.mul({B, T, C})), c.f32("qkv", c.mul({B, T, 3, C})), c.f32("probs", c.mul({B, H, T, T})),
                c.f32("dqkv", c.mul({B, T, 3, C})), B, T, C, H, c.flag("bf16"));
  return c.env.Undefined();
}

Napi::Value SoftmaxXent(Call& c) {
  i64 Nr = c.size("N"), V = c.size("V");
  i64 NV = c.mul({Nr, V});
  i64 bad;
  double loss = softmax_xent(c.f32("logits", NV), c.i32("targets", Nr), c.f32("weights", Nr), c.f32_opt("dlogits", NV), Nr, V, &bad);
  if (bad >= 0) c.range("target out of range at row " + std::to_string(bad));
  return Napi::Number::New(c.env, loss);
}

Napi::Value Embedding(Call& c) {
  i64 B = c.size("B"), T = c.size("T"), C = c.size("C"), V = c.size("V"), maxT = c.size("maxT");
  if (T > maxT) c.range("T exceeds the position table");
  i64 bad = embedding_fwd(c.i32("ids", c.mul({B, T})), c.f32("wte", c.mul({V, C})), c.f32("wpe", c.mul({maxT, C})),
                          c.f32("x", c.mul({B, T, C})), B, T, C, V);
  if (bad >= 0) c.range("id out of range at " + std::to_string(bad));
  return c.env.Undefined();
}

Napi::Value EmbeddingGrad(Call& c) {
  i64 B = c.size("B"), T = c.size("T"), C = c.size("C"), V = c.size("V"), maxT = c.size("maxT");
  if (T > maxT) c.range("T exceeds the position table");
  i64 VC = c.mul({V, C}), TC = c.mul({maxT, C});
  const float* dx = c.f32("dx", c.mul({B, T, C}));
  const int32_t* ids = c.i32("ids", c.mul({B, T}));
  float* dwte = c.f32("dwte", VC);
  float* dwpe = c.f32("dwpe", TC);
  std::memset(dwte, 0, VC * sizeof(float));
  std::memset(dwpe, 0, TC * sizeof(float));
  i64 bad = embedding_bwd(dx, ids, dwte, dwpe, B, T, C, V);
  if (bad >= 0) c.range("id out of range at " + std::to_string(bad));
  return c.env.Undefined();
}

Napi::Value AdamW(Call& c) {
  Napi::Array l = c.list("list");
  Napi::Array mask = c.list("decayMask");
  if (l.Length() % 4 != 0) c.range("list length must be a multiple of 4 (p, g, m, v per parameter)");
  std::vector<AdamParam> ps;
  for (uint32_t k = 0; k < l.Length(); k += 4) {
    const std::string which = c.at("list") + "[" + std::to_string(k / 4) + "]";
    Arr p = c.typed_value(l.Get(k), napi_float32_array, which + ".p");
    Arr g = c.typed_value(l.Get(k + 1), napi_float32_array, which + ".g");
    Arr m = c.typed_value(l.Get(k + 2), napi_float32_array, which + ".m");
    Arr v = c.typed_value(l.Get(k + 3), napi_float32_array, which + ".v");
    if (g.n != p.n || m.n != p.n || v.n != p.n) c.range("p, g, m, v sizes differ for parameter " + std::to_string(k / 4));
    AdamParam a;
    a.n = (i64)p.n;
    a.p = static_cast<float*>(p.p);
    a.g = static_cast<float*>(g.p);
    a.m = static_cast<float*>(m.p);
    a.v = static_cast<float*>(v.p);
    a.decay = (k / 4) < mask.Length() ? mask.Get(k / 4).ToBoolean().Value() : false;
    ps.push_back(a);
  }
  double step = c.num("step");
  if (step < 1) c.range("step is 1-based");
  adamw(ps, (float)c.num("lr"), (float)c.num("beta1"), (float)c.num("beta2"), (float)c.num("eps"), (float)c.num("weightDecay"), step,
        (float)c.num("gradScale"));
  return c.env.Undefined();
}

Napi::Value SumSquares(Call& c) {
  Napi::Array l = c.list("xs");
  std::vector<std::pair<const float*, i64>> xs;
  for (uint32_t k = 0; k < l.Length(); k++) {
    Arr a = c.typed_value(l.Get(k), napi_float32_array, c.at("xs"));
    xs.push_back({static_cast<float*>(a.p), (i64)a.n});
  }
  return Napi::Number::New(c.env, sum_squares(xs));
}

// ---------------------------------------------------------------- the table
const std::vector<Binding> BINDINGS = {
    {"info", {}, Info},
    {"signatures", {}, Signatures},
    {"opCodes", {}, OpCodes},
    {"selfTest", {"fault"}, SelfTest},
    {"setThreads", {"n"}, SetThreads},
    {"setGemmDefault", {"opCase", "engine"}, SetGemmDefault},
    {"matmul", {"a", "b", "c", "batch", "batchA", "batchB", "M", "N", "K", "transA", "transB", "bias", "act", "accumulate", "engine"}, Matmul},
    {"binary", {"op", "a", "aShape", "b", "bShape", "out", "outShape"}, Binary},
    {"unary", {"op", "x", "y"}, Unary},
    {"addN", {"xs", "y"}, AddN},
    {"select", {"cond", "a", "b", "out"}, Select},
    {"reduce", {"op", "x", "out", "outer", "R", "inner"}, Reduce},
    {"softmax", {"x", "y", "rows", "cols", "log"}, Softmax},
    {"transpose", {"x", "y", "shape", "perm"}, Transpose},
    {"slice", {"x", "y", "shape", "begin", "size"}, Slice},
    {"splitCols", {"x", "outs", "outer", "widths"}, SplitCols},
    {"concatCols", {"ins", "y", "outer", "widths"}, ConcatCols},
    {"gatherRows", {"x", "indices", "y", "rows", "rowSize"}, GatherRows},
    {"segmentSum", {"x", "ids", "y", "nRows", "rowSize", "nSeg"}, SegmentSum},
    {"colSum", {"x", "out", "rows", "cols"}, ColSum},
    {"matmulImpl", {"M", "N", "K", "bf16"}, MatmulImpl},
    {"linear", {"x", "w", "b", "y", "M", "K", "N", "transW", "bf16"}, Linear},
    {"linearGrad", {"dy", "x", "w", "dx", "dw", "db", "M", "K", "N", "transW", "bf16"}, LinearGrad},
    {"linearGelu", {"x", "w", "b", "y", "h", "M", "K", "N", "bf16"}, LinearGelu},
    {"linearGeluGrad", {"dy", "x", "w", "h", "dx", "dw", "db", "M", "K", "N", "bf16"}, LinearGeluGrad},
    {"layerNorm", {"x", "gamma", "beta", "eps", "y", "mean", "rstd", "rows", "C"}, LayerNorm},
    {"layerNormGrad", {"dy", "x", "gamma", "mean", "rstd", "dx", "dgamma", "dbeta", "rows", "C"}, LayerNormGrad},
    {"gelu", {"x", "y"}, Gelu},
    {"geluGrad", {"dy", "x", "dx"}, GeluGrad},
    {"attention", {"qkv", "out", "probs", "B", "T", "C", "H", "bf16"}, Attention},
    {"attentionGrad", {"dout", "qkv", "probs", "dqkv", "B", "T", "C", "H", "bf16"}, AttentionGrad},
    {"softmaxXent", {"logits", "targets", "weights", "dlogits", "N", "V"}, SoftmaxXent},
    {"embedding", {"ids", "wte", "wpe", "x", "B", "T", "C", "V", "maxT"}, Embedding},
    {"embeddingGrad", {"dx", "ids", "dwte", "dwpe", "B", "T", "C", "V", "maxT"}, EmbeddingGrad},
    {"adamw", {"list", "decayMask", "lr", "beta1", "beta2", "eps", "weightDecay", "step", "gradScale"}, AdamW},
    {"sumSquares", {"xs"}, SumSquares},
};

Napi::Value Signatures(Call& c) {
  Napi::Object o = Napi::Object::New(c.env);
  for (const Binding& b : BINDINGS) {
    Napi::Array a = Napi::Array::New(c.env, b.args.size());
    for (uint32_t k = 0; k < b.args.size(); k++) a.Set(k, b.args[k]);
    o.Set(b.name, a);
  }
  return o;
}

// Every binding runs here: arity checked, and every C++ exception turned into a JavaScript one.
Napi::Value Dispatch(const Napi::CallbackInfo& info) {
  const Binding& b = *static_cast<const Binding*>(info.Data());
  Napi::Env env = info.Env();
  try {
    Call c(info, b);
    c.check_arity();
    return b.body(c);
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::bad_alloc&) {
    throw Napi::RangeError::New(env, std::string(b.name) + ": out of memory");
  } catch (const std::length_error& e) {
    throw Napi::RangeError::New(env, std::string(b.name) + ": " + e.what());
  } catch (const std::invalid_argument& e) {
    throw Napi::RangeError::New(env, std::string(b.name) + ": " + e.what());
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, std::string(b.name) + ": " + e.what());
  } catch (...) {
    throw Napi::Error::New(env, std::string(b.name) + ": unknown native exception");
  }
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  for (const Binding& b : BINDINGS)
    exports.Set(b.name, Napi::Function::New(env, Dispatch, b.name, const_cast<Binding*>(&b)));
  return exports;
}

}  // namespace

NODE_API_MODULE(persona_native, Init)
