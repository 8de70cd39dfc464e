// Element-wise, reduction and layout kernels. All deterministic: every output element is produced
// by one thread in a fixed order, and cross-element sums use fixed chunking independent of the
// thread count.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

#include "common.h"
#include "vmath.h"

namespace pnative {

// ---------------------------------------------------------------- binary
template <int OP>
static inline float binop(float a, float b) {
  if (OP == B_ADD) return a + b;
  if (OP == B_SUB) return a - b;
  if (OP == B_MUL) return a * b;
  if (OP == B_DIV) return a / b;
  if (OP == B_MAX) return (a > b || a != a) ? a : b;
  if (OP == B_MIN) return (a < b || a != a) ? a : b;
  if (OP == B_SQDIFF) return (a - b) * (a - b);
  return 0.0f;
}

// Inner loop over n contiguous output elements; sa/sb are 0 (broadcast) or 1.
template <int OP>
static inline void bin_inner(const float* a, i64 sa, const float* b, i64 sb, float* o, i64 n) {
  if (sa == 1 && sb == 1) {
#pragma omp simd
    for (i64 i = 0; i < n; i++) o[i] = binop<OP>(a[i], b[i]);
  } else if (sa == 1) {
    const float bv = b[0];
#pragma omp simd
    for (i64 i = 0; i < n; i++) o[i] = binop<OP>(a[i], bv);
  } else if (sb == 1) {
    const float av = a[0];
#pragma omp simd
    for (i64 i = 0; i < n; i++) o[i] = binop<OP>(av, b[i]);
  } else {
    const float v = binop<OP>(a[0], b[0]);
    for (i64 i = 0; i < n; i++) o[i] = v;
  }
}

template <int OP>
static void binary_t(const float* a, const std::vector<i64>& sa, const float* b, const std::vector<i64>& sb,
                     float* out, const std::vector<i64>& shape) {
  const int r = (int)shape.size();
  i64 total = 1;
  for (i64 d : shape) total *= d;
  if (total == 0) return;
  if (r <= 1) {
    i64 stA = r ? sa[0] : 0, stB = r ? sb[0] : 0;
    par_range(total, EW_GRAIN, [&](i64 lo, i64 hi) {
      bin_inner<OP>(a + (stA ? lo : 0), stA, b + (stB ? lo : 0), stB, out + lo, hi - lo);
    });
    return;
  }
  const i64 inner = shape[r - 1];
  const i64 rows = total / inner;
  const i64 isa = sa[r - 1], isb = sb[r - 1];
  auto do_rows = [&](i64 lo, i64 hi) {
    // odometer over the leading r-1 dims, starting at row lo
    std::vector<i64> idx(r - 1, 0);
    i64 rem = lo;
    for (int d = r - 2; d >= 0; d--) {
      idx[d] = rem % shape[d];
      rem /= shape[d];
    }
    i64 offA = 0, offB = 0;
    for (int d = 0; d < r - 1; d++) {
      offA += idx[d] * sa[d];
      offB += idx[d] * sb[d];
    }
    for (i64 row = lo; row < hi; row++) {
      bin_inner<OP>(a + offA, isa, b + offB, isb, out + row * inner, inner);
      for (int d = r - 2; d >= 0; d--) {
        idx[d]++;
        offA += sa[d];
        offB += sb[d];
        if (idx[d] < shape[d]) break;
        offA -= sa[d] * shape[d];
        offB -= sb[d] * shape[d];
        idx[d] = 0;
      }
    }
  };
  if (total <= EW_GRAIN || max_threads() <= 1) {
    do_rows(0, rows);
  } else {
    int nt = max_threads();
    i64 per = (rows + nt - 1) / nt;
    par_items(nt, 1, 0, [&](i64 t) {
      i64 lo = t * per, hi = std::min(rows, lo + per);
      if (lo < hi) do_rows(lo, hi);
    });
  }
}

void binary(int op, const float* a, const std::vector<i64>& ashape, const float* b, const std::vector<i64>& bshape,
            float* out, const std::vector<i64>& oshape) {
  const int r = (int)oshape.size();
  // Broadcast strides, right-aligned.
  std::vector<i64> sa(r, 0), sb(r, 0);
  {
    i64 st = 1;
    for (int d = (int)ashape.size() - 1, od = r - 1; d >= 0; d--, od--) {
      sa[od] = ashape[d] == 1 ? 0 : st;
      st *= ashape[d];
    }
    st = 1;
    for (int d = (int)bshape.size() - 1, od = r - 1; d >= 0; d--, od--) {
      sb[od] = bshape[d] == 1 ? 0 : st;
      st *= bshape[d];
    }
  }
  // Drop size-1 dims, merge dims whose strides are contiguous for both inputs.
  std::vector<i64> cs, ca, cb;
  for (int d = 0; d < r; d++) {
    if (oshape[d] == 1) continue;
    if (!cs.empty()) {
      i64 n = oshape[d];
      i64 pa = ca.back(), pb = cb.back();
      bool okA = (pa == 0 && sa[d] == 0) || (pa != 0 && sa[d] != 0 && pa == sa[d] * n);
      bool okB = (pb == 0 && sb[d] == 0) || (pb != 0 && sb[d] != 0 && pb == sb[d] * n);
      if (okA && okB) {
        cs.back() *= n;
        ca.back() = sa[d];
        cb.back() = sb[d];
        continue;
      }
    }
    cs.push_back(oshape[d]);
    ca.push_back(sa[d]);
    cb.push_back(sb[d]);
  }
  switch (op) {
    case B_ADD: binary_t<B_ADD>(a, ca, b, cb, out, cs); break;
    case B_SUB: binary_t<B_SUB>(a, ca, b, cb, out, cs); break;
    case B_MUL: binary_t<B_MUL>(a, ca, b, cb, out, cs); break;
    case B_DIV: binary_t<B_DIV>(a, ca, b, cb, out, cs); break;
    case B_MAX: binary_t<B_MAX>(a, ca, b, cb, out, cs); break;
    case B_MIN: binary_t<B_MIN>(a, ca, b, cb, out, cs); break;
    case B_SQDIFF: binary_t<B_SQDIFF>(a, ca, b, cb, out, cs); break;
    default: throw std::invalid_argument("binary: unknown op " + std::to_string(op));
  }
}

// ---------------------------------------------------------------- unary
template <int OP>
static inline float unop(float x) {
  if (OP == U_EXP) return vexp(x);
  if (OP == U_LOG) return vlog(x);
  if (OP == U_TANH) return vtanh(x);
  if (OP == U_SQRT) return std::sqrt(x);
  if (OP == U_RSQRT) return 1.0f / std::sqrt(x);
  if (OP == U_NEG) return -x;
  if (OP == U_SQUARE) return x * x;
  if (OP == U_RECIP) return 1.0f / x;
  if (OP == U_ABS) return std::fabs(x);
  if (OP == U_RELU) return x < 0.0f ? 0.0f : x;
  if (OP == U_SIGMOID) return vsigmoid(x);
  if (OP == U_GELU) return vgelu(x);
  return x;
}
template <int OP>
static void unary_t(const float* x, float* y, i64 n) {
  par_range(n, EW_GRAIN, [=](i64 lo, i64 hi) {
    // No __restrict: the native backend calls this in place (y == x).
    const float* xp = x + lo;
    float* yp = y + lo;
    const i64 m = hi - lo;
#pragma omp simd
    for (i64 i = 0; i < m; i++) yp[i] = unop<OP>(xp[i]);
  });
}
void unary(int op, const float* x, float* y, i64 n) {
  switch (op) {
    case U_EXP: unary_t<U_EXP>(x, y, n); break;
    case U_LOG: unary_t<U_LOG>(x, y, n); break;
    case U_TANH: unary_t<U_TANH>(x, y, n); break;
    case U_SQRT: unary_t<U_SQRT>(x, y, n); break;
    case U_RSQRT: unary_t<U_RSQRT>(x, y, n); break;
    case U_NEG: unary_t<U_NEG>(x, y, n); break;
    case U_SQUARE: unary_t<U_SQUARE>(x, y, n); break;
    case U_RECIP: unary_t<U_RECIP>(x, y, n); break;
    case U_ABS: unary_t<U_ABS>(x, y, n); break;
    case U_RELU: unary_t<U_RELU>(x, y, n); break;
    case U_SIGMOID: unary_t<U_SIGMOID>(x, y, n); break;
    case U_GELU: unary_t<U_GELU>(x, y, n); break;
    default: throw std::invalid_argument("unary: unknown op " + std::to_string(op));
  }
}

void addn(const std::vector<const float*>& xs, float* y, i64 n) {
  par_range(n, EW_GRAIN, [&](i64 lo, i64 hi) {
    const float* x0 = xs[0];
#pragma omp simd
    for (i64 i = lo; i < hi; i++) y[i] = x0[i];
    for (size_t k = 1; k < xs.size(); k++) {
      const float* xk = xs[k];
#pragma omp simd
      for (i64 i = lo; i < hi; i++) y[i] += xk[i];
    }
  });
}

void select_op(const uint8_t* cond, const float* a, const float* b, float* out, i64 n) {
  par_range(n, EW_GRAIN, [&](i64 lo, i64 hi) {
#pragma omp simd
    for (i64 i = lo; i < hi; i++) out[i] = cond[i] ? a[i] : b[i];
  });
}

// ---------------------------------------------------------------- reductions
static const i64 RED_CHUNK = 16384;  // fixed chunk of a long row reduced by one thread

template <int OP>
static inline double red_init() {
  if (OP == R_MAX) return -INFINITY;
  if (OP == R_MIN) return INFINITY;
  if (OP == R_PROD) return 1.0;
  return 0.0;
}

// Reduce a contiguous run.
template <int OP>
static inline double red_run(const float* x, i64 n) {
  if (OP == R_SUM || OP == R_MEAN) {
    double s = 0.0;
#pragma omp simd reduction(+ : s)
    for (i64 i = 0; i < n; i++) s += (double)x[i];
    return s;
  } else if (OP == R_PROD) {
    double s = 1.0;
    for (i64 i = 0; i < n; i++) s *= (double)x[i];
    return s;
  } else if (OP == R_MAX) {
    float m = -INFINITY;
    bool nan = false;
#pragma omp simd reduction(max : m) reduction(|| : nan)
    for (i64 i = 0; i < n; i++) {
      m = x[i] > m ? x[i] : m;
      nan = nan || (x[i] != x[i]);
    }
    return nan ? NAN : m;
  } else {
    float m = INFINITY;
    bool nan = false;
#pragma omp simd reduction(min : m) reduction(|| : nan)
    for (i64 i = 0; i < n; i++) {
      m = x[i] < m ? x[i] : m;
      nan = nan || (x[i] != x[i]);
    }
    return nan ? NAN : m;
  }
}
template <int OP>
static inline double red_combine(double a, double b) {
  if (OP == R_SUM || OP == R_MEAN) return a + b;
  if (OP == R_PROD) return a * b;
  if (a != a || b != b) return NAN;
  if (OP == R_MAX) return a > b ? a : b;
  return a < b ? a : b;
}

template <int OP>
static void reduce_t(const float* x, float* out, i64 outer, i64 R, i64 inner) {
  if (inner == 1) {
    const i64 nch = (R + RED_CHUNK - 1) / RED_CHUNK;
    if (nch <= 1) {
      par_items(outer, R, EW_GRAIN, [&](i64 o) {
        double v = red_run<OP>(x + o * R, R);
        if (OP == R_MEAN) v /= (double)R;
        out[o] = (float)v;
      });
      return;
    }
    std::vector<double> part(outer * nch);
    par_items(outer * nch, RED_CHUNK, 0, [&](i64 it) {
      i64 o = it / nch, c = it % nch;
      i64 lo = c * RED_CHUNK, hi = std::min(R, lo + RED_CHUNK);
      part[it] = red_run<OP>(x + o * R + lo, hi - lo);
    });
    for (i64 o = 0; o < outer; o++) {
      double v = part[o * nch];
      for (i64 c = 1; c < nch; c++) v = red_combine<OP>(v, part[o * nch + c]);
      if (OP == R_MEAN) v /= (double)R;
      out[o] = (float)v;
    }
    return;
  }
  // Column-style: out[o, j] = reduce_r x[o, r, j]; items = (o, block of 64 columns).
  const i64 CB = 64;
  const i64 nb = (inner + CB - 1) / CB;
  par_items(outer * nb, R * CB, EW_GRAIN, [&](i64 it) {
    i64 o = it / nb, j0 = (it % nb) * CB, j1 = std::min(inner, j0 + CB), w = j1 - j0;
    const float* base = x + o * R * inner + j0;
    float* dst = out + o * inner + j0;
    if (OP == R_SUM || OP == R_MEAN || OP == R_PROD) {
      double acc[CB];
      for (i64 j = 0; j < w; j++) acc[j] = red_init<OP>();
      for (i64 r = 0; r < R; r++) {
        const float* row = base + r * inner;
        if (OP == R_PROD) {
          for (i64 j = 0; j < w; j++) acc[j] *= (double)row[j];
        } else {
#pragma omp simd
          for (i64 j = 0; j < w; j++) acc[j] += (double)row[j];
        }
      }
      for (i64 j = 0; j < w; j++) dst[j] = (float)(OP == R_MEAN ? acc[j] / (double)R : acc[j]);
    } else {
      float acc[CB];
      for (i64 j = 0; j < w; j++) acc[j] = (float)red_init<OP>();
      for (i64 r = 0; r < R; r++) {
        const float* row = base + r * inner;
#pragma omp simd
        for (i64 j = 0; j < w; j++) {
          float v = row[j];
          float a = acc[j];
          if (OP == R_MAX)
            acc[j] = (a != a) ? a : ((v > a || v != v) ? v : a);
          else
            acc[j] = (a != a) ? a : ((v < a || v != v) ? v : a);
        }
      }
      for (i64 j = 0; j < w; j++) dst[j] = acc[j];
    }
  });
}

void reduce(int op, const float* x, float* out, i64 outer, i64 R, i64 inner) {
  switch (op) {
    case R_SUM: reduce_t<R_SUM>(x, out, outer, R, inner); break;
    case R_MAX: reduce_t<R_MAX>(x, out, outer, R, inner); break;
    case R_MIN: reduce_t<R_MIN>(x, out, outer, R, inner); break;
    case R_MEAN: reduce_t<R_MEAN>(x, out, outer, R, inner); break;
    case R_PROD: reduce_t<R_PROD>(x, out, outer, R, inner); break;
    default: throw std::invalid_argument("reduce: unknown op " + std::to_string(op));
  }
}

void col_sum(const float* x, float* out, i64 rows, i64 cols) { reduce_t<R_SUM>(x, out, 1, rows, cols); }

// ---------------------------------------------------------------- softmax
static inline float row_max(const float* x, i64 n) {
  float m = -INFINITY;
#pragma omp simd reduction(max : m)
  for (i64 i = 0; i < n; i++) m = x[i] > m ? x[i] : m;
  return m;
}

void softmax_rows(const float* x, float* y, i64 rows, i64 cols) {
  par_items(rows, cols, EW_GRAIN / 2, [&](i64 r) {
    const float* xr = x + r * cols;
    float* yr = y + r * cols;
    const float m = row_max(xr, cols);
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (i64 i = 0; i < cols; i++) {
      float e = vexp(xr[i] - m);
      yr[i] = e;
      s += e;
    }
    const float inv = 1.0f / s;
#pragma omp simd
    for (i64 i = 0; i < cols; i++) yr[i] *= inv;
  });
}

void log_softmax_rows(const float* x, float* y, i64 rows, i64 cols) {
  par_items(rows, cols, EW_GRAIN / 2, [&](i64 r) {
    const float* xr = x + r * cols;
    float* yr = y + r * cols;
    const float m = row_max(xr, cols);
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (i64 i = 0; i < cols; i++) s += vexp(xr[i] - m);
    const float lse = m + std::log(s);
#pragma omp simd
    for (i64 i = 0; i < cols; i++) yr[i] = xr[i] - lse;
  });
}

// ---------------------------------------------------------------- layout
void transpose(const uint32_t* x, uint32_t* y, const std::vector<i64>& shape0, const std::vector<i64>& perm0) {
  const int r0 = (int)shape0.size();
  i64 total = 1;
  for (i64 d : shape0) total *= d;
  if (total == 0) return;
  // Drop size-1 dims, then merge input dims that stay adjacent and in order in the output.
  std::vector<int> keep(r0, -1);
  std::vector<i64> shape1;
  for (int d = 0; d < r0; d++)
    if (shape0[d] != 1) {
      keep[d] = (int)shape1.size();
      shape1.push_back(shape0[d]);
    }
  std::vector<int> perm1;
  for (int d = 0; d < r0; d++)
    if (keep[perm0[d]] >= 0) perm1.push_back(keep[perm0[d]]);
  // merge: output positions i, i+1 with perm1[i+1] == perm1[i] + 1
  std::vector<std::vector<int>> groups;  // groups of input dims in output order
  for (size_t i = 0; i < perm1.size(); i++) {
    if (!groups.empty() && groups.back().back() + 1 == perm1[i])
      groups.back().push_back(perm1[i]);
    else
      groups.push_back({perm1[i]});
  }
  const int r = (int)groups.size();
  // new input dims order = groups sorted by first input dim
  std::vector<int> order(r);
  for (int i = 0; i < r; i++) order[i] = i;
  std::sort(order.begin(), order.end(), [&](int a, int b) { return groups[a][0] < groups[b][0]; });
  std::vector<i64> ishape(r), perm(r);
  std::vector<int> inpos(r);  // output group i -> input dim index
  for (int k = 0; k < r; k++) {
    int g = order[k];
    i64 n = 1;
    for (int d : groups[g]) n *= shape1[d];
    ishape[k] = n;
    inpos[g] = k;
  }
  for (int i = 0; i < r; i++) perm[i] = inpos[i];
  if (r <= 1) {
    par_range(total, EW_GRAIN, [&](i64 lo, i64 hi) { std::memcpy(y + lo, x + lo, (hi - lo) * 4); });
    return;
  }
  std::vector<i64> istride(r);
  istride[r - 1] = 1;
  for (int d = r - 2; d >= 0; d--) istride[d] = istride[d + 1] * ishape[d + 1];
  std::vector<i64> oshape(r), ostr_in(r);  // output dim sizes and their input strides
  for (int i = 0; i < r; i++) {
    oshape[i] = ishape[perm[i]];
    ostr_in[i] = istride[perm[i]];
  }
  // Batched 2-D transpose: perm = [0..r-3, r-1, r-2]
  bool b2d = perm[r - 1] == r - 2 && perm[r - 2] == r - 1;
  for (int i = 0; i < r - 2 && b2d; i++) b2d = perm[i] == i;
  if (b2d) {
    const i64 R = ishape[r - 2], Cc = ishape[r - 1], batch = total / (R * Cc);
    const i64 TB = 32;
    const i64 nbr = (R + TB - 1) / TB, nbc = (Cc + TB - 1) / TB;
    par_items(batch * nbr * nbc, TB * TB, EW_GRAIN, [&](i64 it) {
      i64 b = it / (nbr * nbc), rem = it % (nbr * nbc), bi = rem / nbc, bj = rem % nbc;
      const uint32_t* xb = x + b * R * Cc;
      uint32_t* yb = y + b * R * Cc;
      i64 i1 = std::min(R, (bi + 1) * TB), j1 = std::min(Cc, (bj + 1) * TB);
      for (i64 j = bj * TB; j < j1; j++)
        for (i64 i = bi * TB; i < i1; i++) yb[j * R + i] = xb[i * Cc + j];
    });
    return;
  }
  const i64 inner = oshape[r - 1];
  const i64 sin = ostr_in[r - 1];
  const i64 rows = total / inner;
  auto do_rows = [&](i64 lo, i64 hi) {
    std::vector<i64> idx(r - 1, 0);
    i64 rem = lo;
    for (int d = r - 2; d >= 0; d--) {
      idx[d] = rem % oshape[d];
      rem /= oshape[d];
    }
    i64 off = 0;
    for (int d = 0; d < r - 1; d++) off += idx[d] * ostr_in[d];
    for (i64 row = lo; row < hi; row++) {
      uint32_t* dst = y + row * inner;
      if (sin == 1) {
        std::memcpy(dst, x + off, inner * 4);
      } else {
        const uint32_t* src = x + off;
        for (i64 j = 0; j < inner; j++) dst[j] = src[j * sin];
      }
      for (int d = r - 2; d >= 0; d--) {
        idx[d]++;
        off += ostr_in[d];
        if (idx[d] < oshape[d]) break;
        off -= ostr_in[d] * oshape[d];
        idx[d] = 0;
      }
    }
  };
  if (total <= EW_GRAIN || max_threads() <= 1) {
    do_rows(0, rows);
  } else {
    int nt = max_threads();
    i64 per = (rows + nt - 1) / nt;
    par_items(nt, 1, 0, [&](i64 t) {
      i64 lo = t * per, hi = std::min(rows, lo + per);
      if (lo < hi) do_rows(lo, hi);
    });
  }
}

void slice(const uint32_t* x, uint32_t* y, const std::vector<i64>& shape, const std::vector<i64>& begin,
           const std::vector<i64>& size) {
  const int r = (int)shape.size();
  i64 total = 1;
  for (i64 d : size) total *= d;
  if (total == 0) return;
  if (r == 0) {
    y[0] = x[0];
    return;
  }
  std::vector<i64> st(r);
  st[r - 1] = 1;
  for (int d = r - 2; d >= 0; d--) st[d] = st[d + 1] * shape[d + 1];
  // Merge trailing dims that are taken whole into the innermost run.
  int last = r - 1;
  i64 inner = size[r - 1];
  while (last > 0 && size[last] == shape[last]) {
    last--;
    inner *= size[last];
  }
  // dims [0, last) iterate; dim `last` contributes begin offset, run length inner
  const i64 rows = total / inner;
  i64 base = 0;
  for (int d = 0; d < r; d++) base += begin[d] * st[d];
  par_items(rows, inner, EW_GRAIN, [&](i64 row) {
    i64 rem = row, off = base;
    for (int d = last - 1; d >= 0; d--) {
      off += (rem % size[d]) * st[d];
      rem /= size[d];
    }
    std::memcpy(y + row * inner, x + off, inner * 4);
  });
}

void split_cols(const uint32_t* x, const std::vector<uint32_t*>& outs, i64 outer, const std::vector<i64>& widths) {
  i64 total = 0;
  for (i64 w : widths) total += w;
  par_items(outer, total, EW_GRAIN, [&](i64 o) {
    i64 off = 0;
    for (size_t k = 0; k < outs.size(); k++) {
      if (widths[k]) std::memcpy(outs[k] + o * widths[k], x + o * total + off, widths[k] * 4);
      off += widths[k];
    }
  });
}

void concat_cols(const std::vector<const uint32_t*>& ins, uint32_t* y, i64 outer, const std::vector<i64>& widths) {
  i64 total = 0;
  for (i64 w : widths) total += w;
  par_items(outer, total, EW_GRAIN, [&](i64 o) {
    i64 off = 0;
    for (size_t k = 0; k < ins.size(); k++) {
      if (widths[k]) std::memcpy(y + o * total + off, ins[k] + o * widths[k], widths[k] * 4);
      off += widths[k];
    }
  });
}

i64 gather_rows(const uint32_t* x, const int32_t* idx, uint32_t* y, i64 rows, i64 row_size, i64 n_idx) {
  for (i64 i = 0; i < n_idx; i++)
    if (idx[i] < 0 || idx[i] >= rows) return i;
  par_items(n_idx, row_size, EW_GRAIN, [&](i64 i) {
    std::memcpy(y + i * row_size, x + (i64)idx[i] * row_size, row_size * 4);
  });
  return -1;
}

void segment_sum(const float* x, const int32_t* ids, float* y, i64 n_rows, i64 row_size, i64 n_seg) {
  par_range(n_seg * row_size, EW_GRAIN, [&](i64 lo, i64 hi) { std::memset(y + lo, 0, (hi - lo) * 4); });
  const i64 CB = 64;
  const i64 nb = (row_size + CB - 1) / CB;
  par_items(nb, n_rows * CB, EW_GRAIN, [&](i64 b) {
    i64 j0 = b * CB, j1 = std::min(row_size, j0 + CB);
    for (i64 r = 0; r < n_rows; r++) {
      i64 s = ids[r];
      if (s < 0 || s >= n_seg) continue;
      const float* src = x + r * row_size;
      float* dst = y + s * row_size;
#pragma omp simd
      for (i64 j = j0; j < j1; j++) dst[j] += src[j];
    }
  });
}

}  // namespace pnative
