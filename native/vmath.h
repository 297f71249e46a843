// Vector math shared by gemm.h and head.h, included once per instruction set before them, with
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
}  // namespace NS
