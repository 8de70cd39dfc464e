// Fused training kernels: layer norm, GELU, causal attention, softmax cross-entropy, embedding,
// AdamW, sum of squares. Deterministic: per-row work is done by one thread; sums across rows use
// fixed chunks combined in a fixed order, whatever the thread count.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "common.h"
#include "vmath.h"

namespace pnative {

// ---------------------------------------------------------------- layer norm
void layer_norm(const float* x, const float* gamma, const float* beta, float eps, float* y, float* mean, float* rstd,
                i64 rows, i64 C) {
  par_items(rows, C * 4, EW_GRAIN, [&](i64 r) {
    const float* xr = x + r * C;
    float* yr = y + r * C;
    double s = 0.0;
#pragma omp simd reduction(+ : s)
    for (i64 i = 0; i < C; i++) s += xr[i];
    const float mu = (float)(s / (double)C);
    double v = 0.0;
#pragma omp simd reduction(+ : v)
    for (i64 i = 0; i < C; i++) {
      float d = xr[i] - mu;
      v += (double)(d * d);
    }
    const float rs = (float)(1.0 / std::sqrt(v / (double)C + (double)eps));
#pragma omp simd
    for (i64 i = 0; i < C; i++) yr[i] = (xr[i] - mu) * rs * gamma[i] + beta[i];
    mean[r] = mu;
    rstd[r] = rs;
  });
}

void layer_norm_grad(const float* dy, const float* x, const float* gamma, const float* mean, const float* rstd,
                     float* dx, float* dgamma, float* dbeta, i64 rows, i64 C) {
  const i64 CH = 64;  // rows per chunk for the dgamma/dbeta partial sums
  const i64 nch = (rows + CH - 1) / CH;
  std::vector<float> pg(nch * C), pb(nch * C);
  par_items(nch, CH * C * 6, EW_GRAIN, [&](i64 c) {
    float* g_acc = pg.data() + c * C;
    float* b_acc = pb.data() + c * C;
    for (i64 i = 0; i < C; i++) g_acc[i] = b_acc[i] = 0.0f;
    const i64 r1 = std::min(rows, (c + 1) * CH);
    for (i64 r = c * CH; r < r1; r++) {
      const float* xr = x + r * C;
      const float* dyr = dy + r * C;
      float* dxr = dx + r * C;
      const float mu = mean[r], rs = rstd[r];
      float sg = 0.0f, sgx = 0.0f;
#pragma omp simd reduction(+ : sg, sgx)
      for (i64 i = 0; i < C; i++) {
        float xh = (xr[i] - mu) * rs;
        float g = dyr[i] * gamma[i];
        sg += g;
        sgx += g * xh;
        g_acc[i] += dyr[i] * xh;
        b_acc[i] += dyr[i];
      }
      const float a = sg / (float)C, b = sgx / (float)C;
#pragma omp simd
      for (i64 i = 0; i < C; i++) {
        float xh = (xr[i] - mu) * rs;
        dxr[i] = rs * (dyr[i] * gamma[i] - a - xh * b);
      }
    }
  });
  for (i64 i = 0; i < C; i++) {
    double sg = 0.0, sb = 0.0;
    for (i64 c = 0; c < nch; c++) {
      sg += pg[c * C + i];
      sb += pb[c * C + i];
    }
    dgamma[i] = (float)sg;
    dbeta[i] = (float)sb;
  }
}

// ---------------------------------------------------------------- GELU
void gelu_fwd(const float* x, float* y, i64 n) {
  par_range(n, EW_GRAIN, [&](i64 lo, i64 hi) {
#pragma omp simd
    for (i64 i = lo; i < hi; i++) y[i] = vgelu(x[i]);
  });
}
void gelu_bwd(const float* dy, const float* x, float* dx, i64 n) {
  par_range(n, EW_GRAIN, [&](i64 lo, i64 hi) {
#pragma omp simd
    for (i64 i = lo; i < hi; i++) dx[i] = dy[i] * vgelu_grad(x[i]);
  });
}

// ---------------------------------------------------------------- causal attention
// qkv [B,T,3C]; per (b,h): S = q k^T / sqrt(hd), causal softmax -> probs [B,H,T,T], out = P v.
static void attention_fwd_loop(const float* qkv, float* out, float* probs, i64 B, i64 T, i64 C, i64 H) {
  const i64 hd = C / H, C3 = 3 * C;
  const float scale = 1.0f / std::sqrt((float)hd);
  par_items(B * H, T * T * hd, 0, [&](i64 item) {
    const i64 b = item / H, h = item % H;
    const float* base = qkv + b * T * C3 + h * hd;
    std::vector<float> kT(hd * T), acc(hd);
    for (i64 s = 0; s < T; s++)
      for (i64 j = 0; j < hd; j++) kT[j * T + s] = base[s * C3 + C + j];
    float* P = probs + item * T * T;
    for (i64 t = 0; t < T; t++) {
      float* row = P + t * T;
      const float* q = base + t * C3;
      const i64 n = t + 1;
      for (i64 s = 0; s < n; s++) row[s] = 0.0f;
      for (i64 j = 0; j < hd; j++) {
        const float qj = q[j] * scale;
        const float* kr = kT.data() + j * T;
#pragma omp simd
        for (i64 s = 0; s < n; s++) row[s] += qj * kr[s];
      }
      float m = -INFINITY;
#pragma omp simd reduction(max : m)
      for (i64 s = 0; s < n; s++) m = row[s] > m ? row[s] : m;
      float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
      for (i64 s = 0; s < n; s++) {
        float e = vexp(row[s] - m);
        row[s] = e;
        sum += e;
      }
      const float inv = 1.0f / sum;
#pragma omp simd
      for (i64 s = 0; s < n; s++) row[s] *= inv;
      for (i64 s = n; s < T; s++) row[s] = 0.0f;
      float* a = acc.data();
      for (i64 j = 0; j < hd; j++) a[j] = 0.0f;
      for (i64 s = 0; s < n; s++) {
        const float p = row[s];
        const float* v = base + s * C3 + 2 * C;
#pragma omp simd
        for (i64 j = 0; j < hd; j++) a[j] += p * v[j];
      }
      float* o = out + (b * T + t) * C + h * hd;
      for (i64 j = 0; j < hd; j++) o[j] = a[j];
    }
  });
}

static void attention_bwd_loop(const float* dout, const float* qkv, const float* probs, float* dqkv, i64 B, i64 T, i64 C,
                               i64 H) {
  const i64 hd = C / H, C3 = 3 * C;
  const float scale = 1.0f / std::sqrt((float)hd);
  par_items(B * H, T * T * hd * 2, 0, [&](i64 item) {
    const i64 b = item / H, h = item % H;
    const float* base = qkv + b * T * C3 + h * hd;
    const float* dob = dout + b * T * C + h * hd;
    std::vector<float> vT(hd * T), dq(T * hd), dk(T * hd, 0.0f), dv(T * hd, 0.0f), dP(T);
    for (i64 s = 0; s < T; s++)
      for (i64 j = 0; j < hd; j++) vT[j * T + s] = base[s * C3 + 2 * C + j];
    const float* P = probs + item * T * T;
    for (i64 t = 0; t < T; t++) {
      const float* prow = P + t * T;
      const float* dot = dob + t * C;
      const float* q = base + t * C3;
      const i64 n = t + 1;
      float* dp = dP.data();
      for (i64 s = 0; s < n; s++) dp[s] = 0.0f;
      for (i64 j = 0; j < hd; j++) {
        const float dj = dot[j];
        const float* vr = vT.data() + j * T;
#pragma omp simd
        for (i64 s = 0; s < n; s++) dp[s] += dj * vr[s];
      }
      float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
      for (i64 s = 0; s < n; s++) sum += prow[s] * dp[s];
      float* dqt = dq.data() + t * hd;
      for (i64 j = 0; j < hd; j++) dqt[j] = 0.0f;
      for (i64 s = 0; s < n; s++) {
        const float p = prow[s];
        const float ds = p * (dp[s] - sum) * scale;
        const float* k = base + s * C3 + C;
        float* dks = dk.data() + s * hd;
        float* dvs = dv.data() + s * hd;
#pragma omp simd
        for (i64 j = 0; j < hd; j++) {
          dqt[j] += ds * k[j];
          dks[j] += ds * q[j];
          dvs[j] += p * dot[j];
        }
      }
    }
    float* db = dqkv + b * T * C3 + h * hd;
    for (i64 t = 0; t < T; t++) {
      float* r = db + t * C3;
      std::memcpy(r, dq.data() + t * hd, hd * 4);
      std::memcpy(r + C, dk.data() + t * hd, hd * 4);
      std::memcpy(r + 2 * C, dv.data() + t * hd, hd * 4);
    }
  });
}

// With a BLAS library: heads gathered into contiguous [B*H, T, hd] blocks, the products as batched
// matmuls over full T x T (the masked half is wasted, but at matmul speed: contiguous batched
// products run ~2.5x faster in oneDNN than strided ones on the packed layout), and the causal softmax
// and its backward as row passes.
static void causal_softmax_rows(float* S, i64 rows, i64 T) {
  par_items(rows, T * 4, EW_GRAIN / 4, [=](i64 r) {
    float* row = S + r * T;
    const i64 n = r % T + 1;
    float m = -INFINITY;
#pragma omp simd reduction(max : m)
    for (i64 s = 0; s < n; s++) m = row[s] > m ? row[s] : m;
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (i64 s = 0; s < n; s++) {
      float e = vexp(row[s] - m);
      row[s] = e;
      sum += e;
    }
    const float inv = 1.0f / sum;
#pragma omp simd
    for (i64 s = 0; s < n; s++) row[s] *= inv;
    for (i64 s = n; s < T; s++) row[s] = 0.0f;
  });
}

// Copies one of q/k/v (part 0/1/2 of the packed [B,T,3C]) into per-head contiguous [B,H,T,hd]
// (or [B,H,hd,T] when transposed), and back (scatter, into [B,T,ld] at column offset `col`).
static void gather_heads(const float* qkv, float* dst, i64 B, i64 T, i64 C, i64 H, int part, bool transposed,
                         float scale = 1.0f) {
  const i64 hd = C / H, C3 = 3 * C;
  par_items(B * H, T * hd, EW_GRAIN, [=](i64 item) {
    const i64 b = item / H, h = item % H;
    const float* src = qkv + b * T * C3 + part * C + h * hd;
    float* d = dst + item * T * hd;
    if (scale != 1.0f) {
      for (i64 t = 0; t < T; t++)
        for (i64 j = 0; j < hd; j++) d[t * hd + j] = src[t * C3 + j] * scale;
    } else if (!transposed) {
      for (i64 t = 0; t < T; t++) std::memcpy(d + t * hd, src + t * C3, hd * 4);
    } else {
      for (i64 t = 0; t < T; t++)
        for (i64 j = 0; j < hd; j++) d[j * T + t] = src[t * C3 + j];
    }
  });
}
static void scatter_heads(const float* src, float* dst, i64 B, i64 T, i64 C, i64 H, i64 ld, i64 col) {
  const i64 hd = C / H;
  par_items(B * H, T * hd, EW_GRAIN, [=](i64 item) {
    const i64 b = item / H, h = item % H;
    const float* s = src + item * T * hd;
    float* d = dst + b * T * ld + col + h * hd;
    for (i64 t = 0; t < T; t++) std::memcpy(d + t * ld, s + t * hd, hd * 4);
  });
}
static void batched(const float* a, const float* b, float* c, i64 batch, i64 M, i64 N, i64 K, bool ta, bool tb, bool bf16) {
  Gemm g;
  g.A = a; g.B = b; g.C = c;
  g.batch = g.batchA = g.batchB = batch;
  g.M = M; g.N = N; g.K = K;
  g.transA = ta; g.transB = tb;
  g.bf16 = bf16;
  gemm_or_throw(g, GEMM_AUTO, "attention");
}
static float* scratch(int slot, i64 n) {
  static thread_local std::vector<float> bufs[5];  // per JS thread (worker_threads may each load the addon)
  if ((i64)bufs[slot].size() < n) bufs[slot].resize(n);
  return bufs[slot].data();
}

void attention_fwd(const float* qkv, float* out, float* probs, i64 B, i64 T, i64 C, i64 H, bool bf16) {
  // The loop (empty inputs, or a build without a matrix library) has no bf16 form.
  if ((!have_dnnl() && !have_blas()) || B * H * T == 0) return attention_fwd_loop(qkv, out, probs, B, T, C, H);
  const i64 hd = C / H, BH = B * H, n = BH * T * hd;
  const float scale = 1.0f / std::sqrt((float)hd);
  float *q = scratch(0, n), *kT = scratch(1, n), *v = scratch(2, n), *o = scratch(3, n);
  gather_heads(qkv, q, B, T, C, H, 0, false, scale);
  gather_heads(qkv, kT, B, T, C, H, 1, true);
  gather_heads(qkv, v, B, T, C, H, 2, false);
  batched(q, kT, probs, BH, T, T, hd, false, false, bf16);  // S = (q*scale) k^T
  causal_softmax_rows(probs, BH * T, T);
  batched(probs, v, o, BH, T, hd, T, false, false, bf16);   // O = P v
  scatter_heads(o, out, B, T, C, H, C, 0);
}

void attention_bwd(const float* dout, const float* qkv, const float* probs, float* dqkv, i64 B, i64 T, i64 C, i64 H,
                   bool bf16) {
  if ((!have_dnnl() && !have_blas()) || B * H * T == 0) return attention_bwd_loop(dout, qkv, probs, dqkv, B, T, C, H);
  const i64 hd = C / H, BH = B * H, n = BH * T * hd, C3 = 3 * C;
  const float scale = 1.0f / std::sqrt((float)hd);
  float *q = scratch(0, n), *k = scratch(1, n), *vT = scratch(2, n), *d = scratch(3, n), *dS = scratch(4, BH * T * T);
  gather_heads(qkv, q, B, T, C, H, 0, false);
  gather_heads(qkv, k, B, T, C, H, 1, false);
  gather_heads(qkv, vT, B, T, C, H, 2, true);
  // dout [B,T,C] -> [B,H,T,hd]: same layout as a part of a packed tensor with row stride C.
  par_items(BH, T * hd, EW_GRAIN, [=](i64 item) {
    const i64 b = item / H, h = item % H;
    for (i64 t = 0; t < T; t++) std::memcpy(d + (item * T + t) * hd, dout + (b * T + t) * C + h * hd, hd * 4);
  });
  batched(d, vT, dS, BH, T, T, hd, false, false, bf16);  // dP = dout v^T
  par_items(BH * T, T * 4, EW_GRAIN / 4, [=](i64 r) {
    const float* p = probs + r * T;
    float* ds = dS + r * T;
    const i64 m = r % T + 1;
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (i64 s = 0; s < m; s++) sum += p[s] * ds[s];
#pragma omp simd
    for (i64 s = 0; s < m; s++) ds[s] = p[s] * (ds[s] - sum) * scale;
    for (i64 s = m; s < T; s++) ds[s] = 0.0f;
  });
  float* tmp = vT;  // vT no longer needed
  batched(probs, d, tmp, BH, T, hd, T, true, false, bf16);  // dV = P^T dout
  scatter_heads(tmp, dqkv, B, T, C, H, C3, 2 * C);
  batched(dS, k, tmp, BH, T, hd, T, false, false, bf16);    // dQ = dS k
  scatter_heads(tmp, dqkv, B, T, C, H, C3, 0);
  batched(dS, q, tmp, BH, T, hd, T, true, false, bf16);     // dK = dS^T q
  scatter_heads(tmp, dqkv, B, T, C, H, C3, C);
}

// ---------------------------------------------------------------- softmax cross-entropy
double softmax_xent(const float* logits, const int32_t* targets, const float* weights, float* dlogits, i64 N, i64 V,
                    i64* bad) {
  *bad = -1;
  double W = 0.0;
  for (i64 i = 0; i < N; i++) {
    W += (double)weights[i];
    if (weights[i] != 0.0f && (targets[i] < 0 || targets[i] >= V)) {
      *bad = i;
      return 0.0;
    }
  }
  const double denom = std::max(W, 1e-8);
  std::vector<double> loss(N, 0.0);
  par_items(N, V * 3, EW_GRAIN / 2, [&](i64 i) {
    const float w = weights[i];
    const float* x = logits + i * V;
    float* d = dlogits ? dlogits + i * V : nullptr;
    if (w == 0.0f) {
      if (d) std::memset(d, 0, V * 4);
      return;
    }
    float m = -INFINITY;
#pragma omp simd reduction(max : m)
    for (i64 j = 0; j < V; j++) m = x[j] > m ? x[j] : m;
    double s = 0.0;
    if (d) {
#pragma omp simd reduction(+ : s)
      for (i64 j = 0; j < V; j++) {
        float e = vexp(x[j] - m);
        d[j] = e;
        s += (double)e;
      }
    } else {
#pragma omp simd reduction(+ : s)
      for (i64 j = 0; j < V; j++) s += (double)vexp(x[j] - m);
    }
    const double lse = (double)m + std::log(s);
    const i64 t = targets[i];
    loss[i] = (double)w * (lse - (double)x[t]);
    if (d) {
      const float c = (float)((double)w / denom / s);
#pragma omp simd
      for (i64 j = 0; j < V; j++) d[j] *= c;
      d[t] -= (float)((double)w / denom);
    }
  });
  double L = 0.0;
  for (i64 i = 0; i < N; i++) L += loss[i];
  return L / denom;
}

// ---------------------------------------------------------------- embedding
i64 embedding_fwd(const int32_t* ids, const float* wte, const float* wpe, float* x, i64 B, i64 T, i64 C, i64 V) {
  for (i64 i = 0; i < B * T; i++)
    if (ids[i] < 0 || ids[i] >= V) return i;
  par_items(B * T, C, EW_GRAIN, [&](i64 r) {
    const float* e = wte + (i64)ids[r] * C;
    const float* p = wpe + (r % T) * C;
    float* o = x + r * C;
#pragma omp simd
    for (i64 j = 0; j < C; j++) o[j] = e[j] + p[j];
  });
  return -1;
}

// dwte [V,C] and dwpe [>=T, C] must be zeroed by the caller's allocation (or are zeroed here).
i64 embedding_bwd(const float* dx, const int32_t* ids, float* dwte, float* dwpe, i64 B, i64 T, i64 C, i64 V) {
  for (i64 i = 0; i < B * T; i++)
    if (ids[i] < 0 || ids[i] >= V) return i;
  const i64 CB = 64;
  const i64 nb = (C + CB - 1) / CB;
  par_items(nb, B * T * CB, EW_GRAIN, [&](i64 blk) {
    const i64 j0 = blk * CB, j1 = std::min(C, j0 + CB);
    for (i64 r = 0; r < B * T; r++) {
      const float* src = dx + r * C;
      float* de = dwte + (i64)ids[r] * C;
      float* dp = dwpe + (r % T) * C;
#pragma omp simd
      for (i64 j = j0; j < j1; j++) {
        de[j] += src[j];
        dp[j] += src[j];
      }
    }
  });
  return -1;
}

// ---------------------------------------------------------------- AdamW
void adamw(const std::vector<AdamParam>& ps, float lr, float beta1, float beta2, float eps, float wd, double step,
           float grad_scale) {
  const float bc1 = (float)(1.0 - std::pow((double)beta1, step));
  const float bc2 = (float)(1.0 - std::pow((double)beta2, step));
  const float ib1 = 1.0f / bc1, ib2 = 1.0f / bc2;
  const i64 CH = 16384;
  struct Item {
    int p;
    i64 lo, hi;
  };
  std::vector<Item> items;
  for (size_t k = 0; k < ps.size(); k++)
    for (i64 lo = 0; lo < ps[k].n; lo += CH) items.push_back({(int)k, lo, std::min(ps[k].n, lo + CH)});
  par_items((i64)items.size(), CH * 4, EW_GRAIN, [&](i64 it) {
    const Item& im = items[it];
    const AdamParam& a = ps[im.p];
    const float decay = a.decay ? (1.0f - lr * wd) : 1.0f;
    float* p = a.p;
    float* m = a.m;
    float* v = a.v;
    const float* g = a.g;
#pragma omp simd
    for (i64 i = im.lo; i < im.hi; i++) {
      const float gi = g[i] * grad_scale;
      const float mi = beta1 * m[i] + (1.0f - beta1) * gi;
      const float vi = beta2 * v[i] + (1.0f - beta2) * gi * gi;
      m[i] = mi;
      v[i] = vi;
      const float mh = mi * ib1, vh = vi * ib2;
      p[i] = p[i] * decay - lr * mh / (std::sqrt(vh) + eps);
    }
  });
}

double sum_squares(const std::vector<std::pair<const float*, i64>>& xs) {
  const i64 CH = 16384;
  struct Item {
    const float* x;
    i64 n;
  };
  std::vector<Item> items;
  for (auto& t : xs)
    for (i64 lo = 0; lo < t.second; lo += CH) items.push_back({t.first + lo, std::min(CH, t.second - lo)});
  std::vector<double> part(items.size());
  par_items((i64)items.size(), CH, EW_GRAIN, [&](i64 it) {
    const float* x = items[it].x;
    double s = 0.0;
#pragma omp simd reduction(+ : s)
    for (i64 i = 0; i < items[it].n; i++) s += (double)x[i] * (double)x[i];
    part[it] = s;
  });
  double s = 0.0;
  for (double v : part) s += v;
  return s;
}

}  // namespace pnative
