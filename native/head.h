// The Gaussian head of the dynamics ensemble: its training step (operators/ensemble.ts lossAndGrads)
// and, for predictions, its variance (headVariance),
// one pass instead of some thirty small tfjs kernels; included once per instruction set, as gemm.h,
// with its macros, after vmath.h (expv, softplusSigmoid). Per member e, row b, output j, with M = maxLV[j], m = minLV[j] and c the NLL scale:
//   a = M − raw, lv = m + softplus(M − softplus(a) − m) (b = that argument), ι = e^−lv, d = μ − y
//   nll[e] = c·Σ (d²ι + lv);  dOut = [2c·d·ι | g·σ(b)·σ(a)] with g = c·(1 − d²ι)
//   sMax[j] = Σ g·σ(b)·(1 − σ(a)),  sMin[j] = Σ g·(1 − σ(b))   (over members and rows)
// Each member's block is copied into contiguous scratch rows (μ, raw, the bounds tiled per row) so
// the math runs on whole vectors; the sums are taken after, in double, over the exact elements.
namespace NS {

// n elements (padded to a multiple of W in every array) of one member's block.
static void head(int n, const float* mu, const float* raw, const float* y, const float* maxT, const float* minT, float c,
                 float* dmu, float* draw, float* nllTerm, float* vMax, float* vMin) {
  const V vc = SET1(c), v2c = SET1(2.f * c), one = SET1(1.f);
  for (int i = 0; i < n; i += W) {
    const V M = LOAD(maxT + i), m = LOAD(minT + i);
    const V a = SUB(M, LOAD(raw + i));
    V spA, sA, spB, sB;
    softplusSigmoid(a, spA, sA);
    const V b = SUB(SUB(M, spA), m);
    softplusSigmoid(b, spB, sB);
    const V lv = ADD(m, spB);
    const V iota = expv(SUB(ZERO(), lv));
    const V d = SUB(LOAD(mu + i), LOAD(y + i));
    const V d2i = MUL(MUL(d, d), iota);
    STORE(nllTerm + i, ADD(d2i, lv));
    STORE(dmu + i, MUL(MUL(v2c, d), iota));
    const V g = MUL(vc, SUB(one, d2i));
    const V gsb = MUL(g, sB);
    const V dr = MUL(gsb, sA);
    STORE(draw + i, dr);
    STORE(vMax + i, SUB(gsb, dr));
    STORE(vMin + i, SUB(g, gsb));
  }
}

// Inference: the variance e^lv of n elements (padded to a multiple of W) from the raw outputs, with
// the same bounded lv as head() above.
static void headVariance(int n, const float* raw, const float* maxT, const float* minT, float* var) {
  for (int i = 0; i < n; i += W) {
    const V M = LOAD(maxT + i), m = LOAD(minT + i);
    V spA, sA, spB, sB;
    softplusSigmoid(SUB(M, LOAD(raw + i)), spA, sA);
    softplusSigmoid(SUB(SUB(M, spA), m), spB, sB);
    STORE(var + i, expv(ADD(m, spB)));
  }
}
}  // namespace NS
