// Branch-free float math that GCC/Clang auto-vectorise inside `#pragma omp simd` loops.
// Accuracy: exp/log within ~2 ulp (Cephes polynomials), tanh within ~3e-7 absolute.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

namespace pnative {

static inline float bits_to_float(int32_t i) { float f; std::memcpy(&f, &i, 4); return f; }
static inline int32_t float_to_bits(float f) { int32_t i; std::memcpy(&i, &f, 4); return i; }

// exp(x): Cephes expf. exp(-inf) = 0, exp(+inf) = inf, NaN propagates.
static inline float vexp(float x) {
  const float hi = 88.3762626647949f, lo = -87.3365447504019f;
  float xc = x > hi ? hi : x;
  xc = xc < lo ? lo : xc;
  // round to nearest with the 1.5*2^23 trick (vectorises without SSE4.1 rounding or -ffast-math)
  float n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  float r = xc - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500E-4f;
  p = p * r + 1.3981999507E-3f;
  p = p * r + 8.3334519073E-3f;
  p = p * r + 4.1665795894E-2f;
  p = p * r + 1.6666665459E-1f;
  p = p * r + 5.0000001201E-1f;
  float y = p * r * r + r + 1.0f;
  int32_t e = (int32_t)n + 127;
  float s = bits_to_float(e << 23);
  float res = y * s;
  res = x < lo ? 0.0f : res;
  res = x > hi ? INFINITY : res;
  res = (x != x) ? x : res;
  return res;
}

// log(x): Cephes logf. log(0) = -inf, log(<0) = NaN, log(inf) = inf, denormals handled.
static inline float vlog(float x) {
  const float FLT_MIN_N = 1.17549435e-38f;
  bool den = x < FLT_MIN_N;
  float xs = den ? x * 8388608.0f : x;  // 2^23
  int32_t bits = float_to_bits(xs);
  int32_t e = ((bits >> 23) & 0xff) - 126;
  float m = bits_to_float((bits & 0x007fffff) | 0x3f000000);  // [0.5, 1)
  float ef = (float)e - (den ? 23.0f : 0.0f);
  bool small = m < 0.707106781186547524f;
  ef = small ? ef - 1.0f : ef;
  m = small ? (m + m - 1.0f) : (m - 1.0f);
  float z = m * m;
  float y = 7.0376836292E-2f;
  y = y * m + -1.1514610310E-1f;
  y = y * m + 1.1676998740E-1f;
  y = y * m + -1.2420140846E-1f;
  y = y * m + 1.4249322787E-1f;
  y = y * m + -1.6668057665E-1f;
  y = y * m + 2.0000714765E-1f;
  y = y * m + -2.4999993993E-1f;
  y = y * m + 3.3333331174E-1f;
  y = y * m * z;
  y += ef * -2.12194440e-4f;
  y += -0.5f * z;
  float res = m + y + ef * 0.693359375f;
  res = x == 0.0f ? -INFINITY : res;
  res = x < 0.0f ? NAN : res;
  res = x == INFINITY ? INFINITY : res;
  res = (x != x) ? x : res;
  return res;
}

// tanh(x): odd rational approximation (as in Eigen), clamped; tiny |x| returns x.
static inline float vtanh(float x) {
  const float c = 7.90531110763549805f;
  float xc = x > c ? c : x;
  xc = xc < -c ? -c : xc;
  float x2 = xc * xc;
  float p = -2.76076847742355e-16f;
  p = p * x2 + 2.00018790482477e-13f;
  p = p * x2 + -8.60467152213735e-11f;
  p = p * x2 + 5.12229709037114e-08f;
  p = p * x2 + 1.48572235717979e-05f;
  p = p * x2 + 6.37261928875436e-04f;
  p = p * x2 + 4.89352455891786e-03f;
  p = p * xc;
  float q = 1.19825839466702e-06f;
  q = q * x2 + 1.18534705686654e-04f;
  q = q * x2 + 2.26843463243900e-03f;
  q = q * x2 + 4.89352518554385e-03f;
  float res = p / q;
  float ax = x < 0 ? -x : x;
  res = ax < 0.0004f ? x : res;
  res = (x != x) ? x : res;
  return res;
}

static inline float vsigmoid(float x) { return 1.0f / (1.0f + vexp(-x)); }

// GPT-2 tanh-approximate GELU and its derivative.
static const float GELU_K0 = 0.7978845608028654f;  // sqrt(2/pi)
static const float GELU_K1 = 0.044715f;
static inline float vgelu(float x) {
  float t = vtanh(GELU_K0 * (x + GELU_K1 * x * x * x));
  return 0.5f * x * (1.0f + t);
}
static inline float vgelu_grad(float x) {
  float t = vtanh(GELU_K0 * (x + GELU_K1 * x * x * x));
  return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * GELU_K0 * (1.0f + 3.0f * GELU_K1 * x * x);
}

}  // namespace pnative
