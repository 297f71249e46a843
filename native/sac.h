// SAC's tanh-squashed Gaussian (operators/sac.ts, the squash in gradients()), one vector pass
// instead of some dozen small tfjs kernels; included once per instruction set, after vmath.h, with
// its macros. Per element, with lo/hi the log σ clip:
//   ls = clip(raw, lo, hi), se = e^ls·ε, u = μ + se, a = tanh u = 1 − 2σ(−2u),
//   term = ls − 2(u + softplus(−2u))   (so log π = base − Σ_j term; base holds −ε²/2 and constants)
// softplus(−2u) and σ(−2u) come from the one exponential e^−2|u| (softplusSigmoid).
namespace NS {

// n elements (padded to a multiple of W in every array).
static void squash(int n, const float* mu, const float* raw, const float* eps, float lo, float hi, float* a, float* se, float* term) {
  const V vlo = SET1(lo), vhi = SET1(hi), one = SET1(1.f), two = SET1(2.f), m2 = SET1(-2.f);
  for (int i = 0; i < n; i += W) {
    const V ls = MIN(MAX(LOAD(raw + i), vlo), vhi);
    const V s = MUL(expv(ls), LOAD(eps + i));
    const V u = ADD(LOAD(mu + i), s);
    V sp, sg;
    softplusSigmoid(MUL(m2, u), sp, sg);
    STORE(a + i, FNMADD(two, sg, one));
    STORE(se + i, s);
    STORE(term + i, FNMADD(two, ADD(u, sp), ls));
  }
}
}  // namespace NS
