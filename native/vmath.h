// Vector math shared by gemm.h, head.h and sac.h, included once per instruction set before them, with
// the includer's macros (V, SET1, FMADD, …, SCALE2N).
namespace NS {

// e^x = 2^n·p(r) with n = round(x·log2 e), r = x − n·ln 2 (Cody-Waite), p a degree-6 Taylor polynomial
// (relative error < 2e-7 on |r| ≤ ln2/2); x clamped to [−87, 88], where e^x neither overflows nor
// leaves the normal range (below −87 the result is about 0).
static inline V expv(V x) {
  x = MIN(MAX(x, SET1(-87.f)), SET1(88.f));
  const V n = ROUND(MUL(x, SET1(1.44269504f)));
  V r = FNMADD(n, SET1(0.693145752f), x);
  r = FNMADD(n, SET1(1.42860677e-6f), r);
  V p = SET1(1.f / 720);
  p = FMADD(p, r, SET1(1.f / 120));
  p = FMADD(p, r, SET1(1.f / 24));
  p = FMADD(p, r, SET1(1.f / 6));
  p = FMADD(p, r, SET1(0.5f));
  p = FMADD(p, r, SET1(1.f));
  p = FMADD(p, r, SET1(1.f));
  return SCALE2N(p, n);
}

// log(1 + t) for t in [0, 1]: 2·atanh(u), u = t/(2 + t) ≤ 1/3, odd series to u¹³ (error < 1e-8).
static inline V log1pUnit(V t) {
  const V u = DIV(t, ADD(SET1(2.f), t));
  const V u2 = MUL(u, u);
  V p = SET1(2.f / 13);
  p = FMADD(p, u2, SET1(2.f / 11));
  p = FMADD(p, u2, SET1(2.f / 9));
  p = FMADD(p, u2, SET1(2.f / 7));
  p = FMADD(p, u2, SET1(2.f / 5));
  p = FMADD(p, u2, SET1(2.f / 3));
  p = FMADD(p, u2, SET1(2.f));
  return MUL(p, u);
}

// softplus(x) = max(x, 0) + log1p(e^−|x|) and σ(x), from the one exponential t = e^−|x|.
static inline void softplusSigmoid(V x, V& sp, V& sg) {
  const V ax = MAX(x, SUB(ZERO(), x));
  const V t = expv(SUB(ZERO(), ax));
  sp = ADD(MAX(x, ZERO()), log1pUnit(t));
  const V inv1t = DIV(SET1(1.f), ADD(SET1(1.f), t));
  sg = BLENDNEG(x, MUL(t, inv1t), inv1t);  // x < 0: t/(1+t); else 1/(1+t)
}
}  // namespace NS
