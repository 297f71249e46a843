// Native dense-layer kernels for the tfjs wasm backend (pipeline/kernels.ts): a gemm that runs on
// the wasm heap in place, with the host's wide SIMD and FMA (AVX-512 or AVX2), which WebAssembly
// cannot use (128-bit lanes, no FMA). (-Wno-maybe-uninitialized: GCC 12 warns inside its own
// AVX-512 intrinsics, _mm512_undefined_ps.) Built at `npm install` by node-gyp when a C++ compiler is
// there; without it, or on a CPU without AVX2, the wasm kernels are used.
#include <node_api.h>
#include <immintrin.h>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

constexpr int KC = 256;  // rows of k packed at a time: a panel is KC × NR floats (32 KB at NR 32)
constexpr int MC = 96;   // rows of A kept in cache across the panels of one pass

#pragma GCC push_options
#pragma GCC target("avx512f")
#define NS avx512
#define V __m512
#define W 16
#define MR 12
#define ZERO() _mm512_setzero_ps()
#define LOAD(p) _mm512_load_ps(p)
#define LOADU(p) _mm512_loadu_ps(p)
#define STORE(p, v) _mm512_store_ps(p, v)
#define STOREU(p, v) _mm512_storeu_ps(p, v)
#define SET1(x) _mm512_set1_ps(x)
#define FMADD(a, b, c) _mm512_fmadd_ps(a, b, c)
#define ADD(a, b) _mm512_add_ps(a, b)
#define MAX(a, b) _mm512_max_ps(a, b)
#define MIN(a, b) _mm512_min_ps(a, b)
#define SUB(a, b) _mm512_sub_ps(a, b)
#define MUL(a, b) _mm512_mul_ps(a, b)
#define DIV(a, b) _mm512_div_ps(a, b)
#define FNMADD(a, b, c) _mm512_fnmadd_ps(a, b, c)
#define ROUND(x) _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
#define SCALE2N(p, n) _mm512_scalef_ps(p, n)
#define BLENDNEG(x, neg, pos) _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ), pos, neg)
#define RELUMASK(z, h) _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(h, _mm512_setzero_ps(), _CMP_GT_OQ), z)
#include "vmath.h"
#include "gemm.h"
#include "head.h"
#include "sac.h"
#undef NS
#undef V
#undef W
#undef MR
#undef ZERO
#undef LOAD
#undef LOADU
#undef STORE
#undef STOREU
#undef SET1
#undef FMADD
#undef ADD
#undef MAX
#undef MIN
#undef SUB
#undef MUL
#undef DIV
#undef FNMADD
#undef ROUND
#undef SCALE2N
#undef BLENDNEG
#undef RELUMASK
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx2,fma")
#define NS avx2
#define V __m256
#define W 8
#define MR 6
#define ZERO() _mm256_setzero_ps()
#define LOAD(p) _mm256_load_ps(p)
#define LOADU(p) _mm256_loadu_ps(p)
#define STORE(p, v) _mm256_store_ps(p, v)
#define STOREU(p, v) _mm256_storeu_ps(p, v)
#define SET1(x) _mm256_set1_ps(x)
#define FMADD(a, b, c) _mm256_fmadd_ps(a, b, c)
#define ADD(a, b) _mm256_add_ps(a, b)
#define MAX(a, b) _mm256_max_ps(a, b)
#define MIN(a, b) _mm256_min_ps(a, b)
#define SUB(a, b) _mm256_sub_ps(a, b)
#define MUL(a, b) _mm256_mul_ps(a, b)
#define DIV(a, b) _mm256_div_ps(a, b)
#define FNMADD(a, b, c) _mm256_fnmadd_ps(a, b, c)
#define ROUND(x) _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
// p·2^n with 2^n built in the exponent bits (n is within [-126, 127] after the clamp in expv).
#define SCALE2N(p, n) _mm256_mul_ps(p, _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23)))
#define BLENDNEG(x, neg, pos) _mm256_blendv_ps(pos, neg, _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LT_OQ))
#define RELUMASK(z, h) _mm256_and_ps(z, _mm256_cmp_ps(h, _mm256_setzero_ps(), _CMP_GT_OQ))
#include "vmath.h"
#include "gemm.h"
#include "head.h"
#include "sac.h"
#pragma GCC pop_options

namespace {

enum class Isa { none, avx2, avx512 };

Isa detect() {
  __builtin_cpu_init();
  const char* force = std::getenv("MOPO_NATIVE_ISA");  // "avx2" to test the AVX2 path on an AVX-512 CPU
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (force != nullptr && std::strcmp(force, "avx2") == 0) return avx2 ? Isa::avx2 : Isa::none;
  if (__builtin_cpu_supports("avx512f")) return Isa::avx512;
  return avx2 ? Isa::avx2 : Isa::none;
}

const Isa isa = detect();

// The packing buffer, per thread (ensemble and rollout workers each have their own).
thread_local float* packBuf = nullptr;
thread_local size_t packCap = 0;

float* packFor(size_t floats) {
  if (floats > packCap) {
    std::free(packBuf);
    packBuf = static_cast<float*>(std::aligned_alloc(64, ((floats * 4 + 63) / 64) * 64));
    packCap = packBuf == nullptr ? 0 : floats;
  }
  return packBuf;
}

napi_value throwError(napi_env env, const char* msg) {
  napi_throw_error(env, nullptr, msg);
  return nullptr;
}

// The wasm memory a call works on: range checks and float pointers at byte offsets.
struct Heap {
  uint8_t* p = nullptr;
  int64_t len = 0;
  // `floats` floats at byte offset `off`, aligned, inside the heap.
  bool holds(int64_t off, int64_t floats) const { return off >= 0 && off % 4 == 0 && off + floats * 4 <= len; }
  float* at(int64_t off) const { return reinterpret_cast<float*>(p + off); }
};

// A call's arguments: argv[0] the heap (a Uint8Array: the wasm memory), then n numbers, read as
// integers into v, except those whose bit is set in `doubles`, read into d. False: an error is thrown.
bool readArgs(napi_env env, napi_callback_info info, const char* name, int n, uint32_t doubles, Heap& heap, int64_t* v, double* d) {
  size_t argc = 20;
  napi_value argv[20];
  char msg[96];
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok || argc != static_cast<size_t>(n) + 1) {
    std::snprintf(msg, sizeof msg, "%s: %d arguments expected", name, n + 1);
    throwError(env, msg);
    return false;
  }
  napi_typedarray_type type;
  size_t length;
  void* data;
  napi_value ab;
  size_t byteOffset;
  if (napi_get_typedarray_info(env, argv[0], &type, &length, &data, &ab, &byteOffset) != napi_ok || type != napi_uint8_array) {
    std::snprintf(msg, sizeof msg, "%s: the heap must be a Uint8Array", name);
    throwError(env, msg);
    return false;
  }
  heap.p = static_cast<uint8_t*>(data);
  heap.len = static_cast<int64_t>(length);
  for (int i = 0; i < n; i++) {
    const bool ok = (doubles >> i) & 1 ? napi_get_value_double(env, argv[i + 1], &d[i]) == napi_ok
                                       : napi_get_value_int64(env, argv[i + 1], &v[i]) == napi_ok;
    if (!ok) {
      std::snprintf(msg, sizeof msg, "%s: numeric arguments expected", name);
      throwError(env, msg);
      return false;
    }
  }
  return true;
}

// Rows of [first | second] halves, `half` floats each (μ | raw log-variance, or mean | raw log σ),
// copied apart into contiguous arrays so the vector passes run on whole vectors.
void splitHalves(const float* rows, int64_t R, int64_t half, float* first, float* second) {
  for (int64_t r = 0; r < R; r++) {
    std::memcpy(first + r * half, rows + r * 2 * half, half * 4);
    std::memcpy(second + r * half, rows + r * 2 * half + half, half * 4);
  }
}

// gemm(heap: Uint8Array, aOff, rsA, csA, bOff, rsB, csB, cOff, rsC, m, k, n, biasOff, act, sOff):
// offsets and strides in bytes into `heap` (the wasm memory), as the wasm SIMD gemm takes them;
// biasOff 0 means no bias; act 0 linear, 1 relu, 2 swish, 3 swish with the sigmoids written at sOff
// (laid out as C), 4 zero where the values at sOff (laid out as C) are not > 0 (a relu's gradient
// mask); sOff 0 for the other acts. Every range is checked against the heap before anything is touched.
napi_value Gemm(napi_env env, napi_callback_info info) {
  Heap heap;
  int64_t v[14];
  if (!readArgs(env, info, "gemm", 14, 0, heap, v, nullptr)) return nullptr;
  const int64_t aOff = v[0], rsA = v[1], csA = v[2], bOff = v[3], rsB = v[4], csB = v[5], cOff = v[6], rsC = v[7];
  const int64_t m = v[8], k = v[9], n = v[10], biasOff = v[11], act = v[12], sOff = v[13];
  if (m <= 0 || k <= 0 || n <= 0) return throwError(env, "gemm: empty product");
  if (act < 0 || act > 4) return throwError(env, "gemm: act must be 0 (linear), 1 (relu), 2 (swish), 3 (swish and sigmoid) or 4 (relu mask)");
  if ((act >= 3) != (sOff != 0)) return throwError(env, "gemm: sOff is given with act 3 (swish and sigmoid) or 4 (relu mask) and only then");
  const auto aligned = [](int64_t x) { return x >= 0 && x % 4 == 0; };
  if (!aligned(aOff) || !aligned(rsA) || !aligned(csA) || !aligned(bOff) || !aligned(rsB) || !aligned(csB) || !aligned(cOff) ||
      !aligned(rsC) || !aligned(biasOff) || !aligned(sOff))
    return throwError(env, "gemm: offsets and strides must be non-negative multiples of 4 bytes");
  const auto inside = [&heap](int64_t off, int64_t last) { return off + last + 4 <= heap.len; };
  if (!inside(aOff, (m - 1) * rsA + (k - 1) * csA) || !inside(bOff, (k - 1) * rsB + (n - 1) * csB) ||
      !inside(cOff, (m - 1) * rsC + (n - 1) * 4) || (biasOff != 0 && !inside(biasOff, (n - 1) * 4)) ||
      (sOff != 0 && !inside(sOff, (m - 1) * rsC + (n - 1) * 4)) || rsC < n * 4)
    return throwError(env, "gemm: an operand lies outside the heap");
  const float* A = heap.at(aOff);
  const float* B = heap.at(bOff);
  float* C = heap.at(cOff);
  const float* bias = biasOff == 0 ? nullptr : heap.at(biasOff);
  float* S = sOff == 0 ? nullptr : heap.at(sOff);
  const int kc = k < KC ? static_cast<int>(k) : KC;
  // Denormals flushed to zero for the call (MXCSR FTZ and DAZ), as TensorFlow does on CPUs: tiny
  // gradients otherwise take a slow path in the multiply-adds. The caller's mode is restored.
  const unsigned csr = _mm_getcsr();
  _mm_setcsr(csr | 0x8040);
  struct Restore { unsigned csr; ~Restore() { _mm_setcsr(csr); } } restore{csr};
  if (isa == Isa::none) return throwError(env, "gemm: this CPU has neither AVX-512 nor AVX2 with FMA");
  const int nr = isa == Isa::avx512 ? avx512::NR : avx2::NR;
  const auto gemm = isa == Isa::avx512 ? avx512::gemm : avx2::gemm;
  float* pack = packFor(static_cast<size_t>(kc) * ((n + nr - 1) / nr) * nr);
  if (pack == nullptr) return throwError(env, "gemm: out of memory for the packing buffer");
  gemm(A, rsA / 4, csA / 4, B, rsB / 4, csB / 4, C, rsC / 4, (int)m, (int)k, (int)n, bias, (int)act, S, pack);
  return nullptr;
}

// gaussianHead(heap, outOff, yOff, maxOff, minOff, E, B, D, c, dOutOff, nllOff, sMaxOff, sMinOff):
// the ensemble's Gaussian head (head.h) on the wasm heap: out [E, B, 2D] (μ | raw log-variance),
// y [E, B, D], the bounds [D] each → dOut [E, B, 2D], nll [E], sMax [D], sMin [D]. Offsets in bytes;
// every range is checked against the heap first.
napi_value GaussianHead(napi_env env, napi_callback_info info) {
  Heap heap;
  int64_t v[12];
  double d[12];
  if (!readArgs(env, info, "gaussianHead", 12, 1u << 7, heap, v, d)) return nullptr;  // the 8th, c, a double
  const double c = d[7];
  const int64_t outOff = v[0], yOff = v[1], maxOff = v[2], minOff = v[3], E = v[4], B = v[5], D = v[6];
  const int64_t dOutOff = v[8], nllOff = v[9], sMaxOff = v[10], sMinOff = v[11];
  if (E <= 0 || B <= 0 || D <= 0) return throwError(env, "gaussianHead: empty input");
  if (!heap.holds(outOff, E * B * 2 * D) || !heap.holds(yOff, E * B * D) || !heap.holds(maxOff, D) || !heap.holds(minOff, D) || !heap.holds(dOutOff, E * B * 2 * D) ||
      !heap.holds(nllOff, E) || !heap.holds(sMaxOff, D) || !heap.holds(sMinOff, D))
    return throwError(env, "gaussianHead: an operand lies outside the heap");
  if (isa == Isa::none) return throwError(env, "gaussianHead: this CPU has neither AVX-512 nor AVX2 with FMA");
  const float* out = heap.at(outOff);
  const float* y = heap.at(yOff);
  float* dOut = heap.at(dOutOff);
  const int n = static_cast<int>(B * D);
  const int np = (n + 15) / 16 * 16;  // padded to whole vectors of either width
  // Scratch: μ, raw, y, the tiled bounds, and the five per-element results, np floats each.
  float* s = packFor(static_cast<size_t>(np) * 10);
  if (s == nullptr) return throwError(env, "gaussianHead: out of memory for its scratch");
  float *mu = s, *raw = s + np, *yy = s + 2 * np, *maxT = s + 3 * np, *minT = s + 4 * np;
  float *dmu = s + 5 * np, *draw = s + 6 * np, *nllT = s + 7 * np, *vMax = s + 8 * np, *vMin = s + 9 * np;
  for (int i = 0; i < np; i++) {
    maxT[i] = i < n ? heap.at(maxOff)[i % D] : 0.f;
    minT[i] = i < n ? heap.at(minOff)[i % D] : 0.f;
  }
  std::memset(mu + n, 0, (np - n) * 4);
  std::memset(raw + n, 0, (np - n) * 4);
  std::memset(yy + n, 0, (np - n) * 4);
  std::vector<double> sMax(D, 0.0), sMin(D, 0.0);
  const auto headFn = isa == Isa::avx512 ? avx512::head : avx2::head;
  for (int64_t e = 0; e < E; e++) {
    const float* oe = out + e * B * 2 * D;
    splitHalves(oe, B, D, mu, raw);
    std::memcpy(yy, y + e * B * D, n * 4);
    headFn(np, mu, raw, yy, maxT, minT, static_cast<float>(c), dmu, draw, nllT, vMax, vMin);
    double nll = 0;
    for (int i = 0; i < n; i++) nll += nllT[i];
    heap.at(nllOff)[e] = static_cast<float>(c * nll);
    float* de = dOut + e * B * 2 * D;
    for (int64_t b = 0; b < B; b++) {
      std::memcpy(de + b * 2 * D, dmu + b * D, D * 4);
      std::memcpy(de + b * 2 * D + D, draw + b * D, D * 4);
      for (int64_t j = 0; j < D; j++) {
        sMax[j] += vMax[b * D + j];
        sMin[j] += vMin[b * D + j];
      }
    }
  }
  for (int64_t j = 0; j < D; j++) {
    heap.at(sMaxOff)[j] = static_cast<float>(sMax[j]);
    heap.at(sMinOff)[j] = static_cast<float>(sMin[j]);
  }
  return nullptr;
}

// gaussianVariance(heap, outOff, maxOff, minOff, R, D, muOff, varOff): the ensemble's predicted
// Gaussians (head.h headVariance) for R rows of out [R, 2D] (μ | raw log-variance; R = members ×
// rows) and the bounds [D] → μ [R, D] and e^lv [R, D]. Offsets in bytes, checked first.
napi_value GaussianVariance(napi_env env, napi_callback_info info) {
  Heap heap;
  int64_t v[7];
  if (!readArgs(env, info, "gaussianVariance", 7, 0, heap, v, nullptr)) return nullptr;
  const int64_t outOff = v[0], maxOff = v[1], minOff = v[2], R = v[3], D = v[4], muOff = v[5], varOff = v[6];
  if (R <= 0 || D <= 0) return throwError(env, "gaussianVariance: empty input");
  if (!heap.holds(outOff, R * 2 * D) || !heap.holds(maxOff, D) || !heap.holds(minOff, D) || !heap.holds(muOff, R * D) || !heap.holds(varOff, R * D))
    return throwError(env, "gaussianVariance: an operand lies outside the heap");
  if (isa == Isa::none) return throwError(env, "gaussianVariance: this CPU has neither AVX-512 nor AVX2 with FMA");
  const float* out = heap.at(outOff);
  float *mu = heap.at(muOff), *var = heap.at(varOff);
  // Blocks of rows, so the scratch (raw, the tiled bounds, the result) stays in cache.
  const int64_t BR = 512;
  const int np = static_cast<int>((BR * D + 15) / 16 * 16);
  float* s = packFor(static_cast<size_t>(np) * 4);
  if (s == nullptr) return throwError(env, "gaussianVariance: out of memory for its scratch");
  float *raw = s, *maxT = s + np, *minT = s + 2 * np, *vv = s + 3 * np;
  for (int i = 0; i < np; i++) {
    maxT[i] = heap.at(maxOff)[i % D];
    minT[i] = heap.at(minOff)[i % D];
  }
  const auto fn = isa == Isa::avx512 ? avx512::headVariance : avx2::headVariance;
  for (int64_t r0 = 0; r0 < R; r0 += BR) {
    const int64_t rows = std::min(BR, R - r0);
    splitHalves(out + r0 * 2 * D, rows, D, mu + r0 * D, raw);
    const int n = static_cast<int>(rows * D);
    for (int i = n; i < np; i++) raw[i] = 0.f;
    fn((n + 15) / 16 * 16, raw, maxT, minT, vv);
    std::memcpy(var + r0 * D, vv, n * 4);
  }
  return nullptr;
}

// sacSquash(heap, outOff, epsOff, baseOff, B, A, lo, hi, aOff, logpOff, auxOff): SAC's squashed
// Gaussian (sac.h) on the wasm heap: out [B, 2A] (μ | raw log σ), ε [B, A], base [B] → a [B, A],
// log π [B], aux [B, 2A] = [σ·ε | 1 where lo ≤ raw ≤ hi, else 0]. Offsets in bytes, checked first.
napi_value SacSquash(napi_env env, napi_callback_info info) {
  Heap heap;
  int64_t v[10];
  double d[10];
  if (!readArgs(env, info, "sacSquash", 10, (1u << 5) | (1u << 6), heap, v, d)) return nullptr;  // lo, hi: doubles
  const int64_t outOff = v[0], epsOff = v[1], baseOff = v[2], B = v[3], A = v[4], aOff = v[7], logpOff = v[8], auxOff = v[9];
  const float lo = static_cast<float>(d[5]), hi = static_cast<float>(d[6]);
  if (B <= 0 || A <= 0) return throwError(env, "sacSquash: empty input");
  if (!heap.holds(outOff, B * 2 * A) || !heap.holds(epsOff, B * A) || !heap.holds(baseOff, B) || !heap.holds(aOff, B * A) || !heap.holds(logpOff, B) || !heap.holds(auxOff, B * 2 * A))
    return throwError(env, "sacSquash: an operand lies outside the heap");
  if (isa == Isa::none) return throwError(env, "sacSquash: this CPU has neither AVX-512 nor AVX2 with FMA");
  const float *out = heap.at(outOff), *eps = heap.at(epsOff), *base = heap.at(baseOff);
  float *a = heap.at(aOff), *logp = heap.at(logpOff), *aux = heap.at(auxOff);
  const int n = static_cast<int>(B * A);
  const int np = (n + 15) / 16 * 16;
  float* s = packFor(static_cast<size_t>(np) * 6);
  if (s == nullptr) return throwError(env, "sacSquash: out of memory for its scratch");
  float *mu = s, *raw = s + np, *ee = s + 2 * np, *aa = s + 3 * np, *se = s + 4 * np, *term = s + 5 * np;
  splitHalves(out, B, A, mu, raw);
  std::memcpy(ee, eps, n * 4);
  for (int i = n; i < np; i++) mu[i] = raw[i] = ee[i] = 0.f;
  (isa == Isa::avx512 ? avx512::squash : avx2::squash)(np, mu, raw, ee, lo, hi, aa, se, term);
  std::memcpy(a, aa, n * 4);
  for (int64_t b = 0; b < B; b++) {
    float sum = 0.f;
    for (int64_t j = 0; j < A; j++) {
      const int64_t i = b * A + j;
      sum += term[i];
      aux[b * 2 * A + j] = se[i];
      aux[b * 2 * A + A + j] = raw[i] >= lo && raw[i] <= hi ? 1.f : 0.f;
    }
    logp[b] = base[b] - sum;
  }
  return nullptr;
}

// sacSquashGrad(heap, dAOff, aOff, auxOff, logAlphaOff, M, B, A, dOutOff): the actor's output
// gradient through the squash (operators/sac.ts header), from dA [M, B, A] (summed over M, the
// critic members), a and aux from sacSquash and log α: with g = Σ_m dA, α' = e^{log α}/B,
//   g_u = g·(1 − a²) + 2a·α',  dOut [B, 2A] = [g_u | (g_u·σε − α')·inClip].
napi_value SacSquashGrad(napi_env env, napi_callback_info info) {
  Heap heap;
  int64_t v[8];
  if (!readArgs(env, info, "sacSquashGrad", 8, 0, heap, v, nullptr)) return nullptr;
  const int64_t dAOff = v[0], aOff = v[1], auxOff = v[2], laOff = v[3], M = v[4], B = v[5], A = v[6], dOutOff = v[7];
  if (M <= 0 || B <= 0 || A <= 0) return throwError(env, "sacSquashGrad: empty input");
  if (!heap.holds(dAOff, M * B * A) || !heap.holds(aOff, B * A) || !heap.holds(auxOff, B * 2 * A) || !heap.holds(laOff, 1) || !heap.holds(dOutOff, B * 2 * A))
    return throwError(env, "sacSquashGrad: an operand lies outside the heap");
  const float *dA = heap.at(dAOff), *a = heap.at(aOff), *aux = heap.at(auxOff);
  float* dOut = heap.at(dOutOff);
  const float alphaB = std::exp(heap.at(laOff)[0]) / static_cast<float>(B);
  const int64_t n = B * A;
  for (int64_t b = 0; b < B; b++) {
    for (int64_t j = 0; j < A; j++) {
      const int64_t i = b * A + j;
      float g = dA[i];
      for (int64_t m = 1; m < M; m++) g += dA[m * n + i];
      const float ai = a[i];
      const float gu = g * (1.f - ai * ai) + ai * (2.f * alphaB);
      dOut[b * 2 * A + j] = gu;
      dOut[b * 2 * A + A + j] = (gu * aux[b * 2 * A + j] - alphaB) * aux[b * 2 * A + A + j];
    }
  }
  return nullptr;
}

// sacLosses(heap, qTOff, logpNextOff, rOff, notDoneOff, qOff, qPiOff, logpOff, logAlphaOff, M, B,
//           gamma, targetEntropy, dQOff, dMinOff, gLogAlphaOff, statsOff):
// SAC's scalar losses and their output gradients (operators/sac.ts header), with α = e^{log α}:
//   y = r + γ·notDone·(min_m Q̄_m − α log π'),  dQ [M, B] = (Q − y)/B,
//   dMin [M, B] = −1/B on the member that is min_m Q_m(s, ã) (ties: the first), else 0,
//   g_logα = −(mean log π + H̄),
//   stats [6] = [Σ (Q − y)², Σ (α log π − min Q(s, ã)), max(|Q|, |y|), Σ Q, Σ log π, α].
napi_value SacLosses(napi_env env, napi_callback_info info) {
  Heap heap;
  int64_t v[16];
  double d[16];
  if (!readArgs(env, info, "sacLosses", 16, (1u << 10) | (1u << 11), heap, v, d)) return nullptr;  // γ, H̄: doubles
  const int64_t qTOff = v[0], lpnOff = v[1], rOff = v[2], ndOff = v[3], qOff = v[4], qPiOff = v[5], lpOff = v[6], laOff = v[7];
  const int64_t M = v[8], B = v[9], dQOff = v[12], dMinOff = v[13], gOff = v[14], statsOff = v[15];
  const float gamma = static_cast<float>(d[10]);
  const double targetEntropy = d[11];
  if (M <= 0 || B <= 0) return throwError(env, "sacLosses: empty input");
  if (!heap.holds(qTOff, M * B) || !heap.holds(lpnOff, B) || !heap.holds(rOff, B) || !heap.holds(ndOff, B) || !heap.holds(qOff, M * B) || !heap.holds(qPiOff, M * B) || !heap.holds(lpOff, B) ||
      !heap.holds(laOff, 1) || !heap.holds(dQOff, M * B) || !heap.holds(dMinOff, M * B) || !heap.holds(gOff, 1) || !heap.holds(statsOff, 6))
    return throwError(env, "sacLosses: an operand lies outside the heap");
  const float *qT = heap.at(qTOff), *lpn = heap.at(lpnOff), *r = heap.at(rOff), *nd = heap.at(ndOff), *q = heap.at(qOff), *qPi = heap.at(qPiOff), *lp = heap.at(lpOff);
  float *dQ = heap.at(dQOff), *dMin = heap.at(dMinOff);
  const float alpha = std::exp(heap.at(laOff)[0]);
  const float invB = 1.f / static_cast<float>(B);
  double sDiff2 = 0, sActor = 0, sQ = 0, sLogp = 0;
  float maxAbs = 0.f;
  for (int64_t b = 0; b < B; b++) {
    float minT = qT[b];
    for (int64_t m = 1; m < M; m++) minT = std::min(minT, qT[m * B + b]);
    const float y = r[b] + nd[b] * (minT - alpha * lpn[b]) * gamma;
    maxAbs = std::max(maxAbs, std::fabs(y));
    int64_t first = 0;
    for (int64_t m = 0; m < M; m++) {
      const float qm = q[m * B + b];
      const float diff = qm - y;
      dQ[m * B + b] = diff * invB;
      sDiff2 += static_cast<double>(diff) * diff;
      sQ += qm;
      maxAbs = std::max(maxAbs, std::fabs(qm));
      if (qPi[m * B + b] < qPi[first * B + b]) first = m;
    }
    for (int64_t m = 0; m < M; m++) dMin[m * B + b] = m == first ? -invB : 0.f;
    sActor += alpha * lp[b] - qPi[first * B + b];
    sLogp += lp[b];
  }
  heap.at(gOff)[0] = static_cast<float>(-(sLogp / B + targetEntropy));
  float* stats = heap.at(statsOff);
  stats[0] = static_cast<float>(sDiff2);
  stats[1] = static_cast<float>(sActor);
  stats[2] = maxAbs;  // a NaN Q or y shows in stats[0]
  stats[3] = static_cast<float>(sQ);
  stats[4] = static_cast<float>(sLogp);
  stats[5] = alpha;
  return nullptr;
}

napi_value Isa(napi_env env, napi_callback_info) {
  const char* name = isa == Isa::avx512 ? "avx512" : isa == Isa::avx2 ? "avx2" : "none";
  napi_value s;
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &s);
  return s;
}

}  // namespace

NAPI_MODULE_INIT() {
  const struct { const char* name; napi_callback fn; } exported[] = {
      {"gemm", Gemm}, {"gaussianHead", GaussianHead}, {"gaussianVariance", GaussianVariance},
      {"sacSquash", SacSquash}, {"sacSquashGrad", SacSquashGrad}, {"sacLosses", SacLosses}, {"isa", Isa}};
  for (const auto& e : exported) {
    napi_value fn;
    napi_create_function(env, e.name, NAPI_AUTO_LENGTH, e.fn, nullptr, &fn);
    napi_set_named_property(env, exports, e.name, fn);
  }
  return exports;
}
