// One SIMD gemm, included once per instruction set (see kernels.cc) inside a `#pragma GCC target`
// region, with V, W (lanes), MR (rows of a register tile) and the intrinsics (ZERO, LOAD, …, SCALE2N)
// defined by the includer as macros.
// C = act(A·B (+ bias row)), act linear, relu or swish (z·sigmoid(z)), every operand strided (in floats): A(i,p) = A[i·rsA + p·csA],
// (SWISH_SIG: C = z·s and S = s = sigmoid(z), S laid out as C, for a training forward pass whose backward needs both;
// RELU_MASK: C = z where S > 0, else 0, S read laid out as C: a backward pass's dZ·Wᵀ through the
// previous layer's relu, its output h in S, in the product's epilogue instead of a pass of its own),
// B(p,j) = B[p·rsB + j·csB], C(i,j) = C[i·rsC + j]. B is packed into NR-wide column panels (zero
// padded; a last panel at most W wide, W wide) once per KC rows of k, so a transposed B costs only
// its packing; A is read in place.
namespace NS {
constexpr int NR = 2 * W;

enum Act { LINEAR = 0, RELU = 1, SWISH = 2, SWISH_SIG = 3, RELU_MASK = 4 };

// 1 + e^-z (vmath.h).
static inline V onePlusExpNeg(V z) { return ADD(SET1(1.f), expv(SUB(ZERO(), z))); }

// z·sigmoid(z) = z / (1 + e^-z).
static inline V swish(V z) { return DIV(z, onePlusExpNeg(z)); }

static inline V activate(V z, int act) {
  if (act == RELU) return MAX(z, ZERO());
  if (act == SWISH) return swish(z);
  return z;
}

// An R × (NV·W) tile of C from R rows of A and one packed panel (kc × NV·W): NV is 2 for a full
// panel (NR columns) and 1 for a last panel at most W wide, which so costs half the multiply-adds.
template <int R, int NV>
static inline void tile(const float* A, long rsA, long csA, const float* P, int kc, float* C, long rsC,
                        const float* bias, bool accumulate, int act, float* S) {
  constexpr int PW = NV * W;
  V c[NV][R];
  for (int v = 0; v < NV; v++)
    for (int r = 0; r < R; r++) c[v][r] = ZERO();
  for (int p = 0; p < kc; p++) {
    V b[NV];
    for (int v = 0; v < NV; v++) b[v] = LOAD(P + p * PW + v * W);
    const float* a = A + p * csA;
    for (int r = 0; r < R; r++) {
      const V ar = SET1(a[r * rsA]);
      for (int v = 0; v < NV; v++) c[v][r] = FMADD(ar, b[v], c[v][r]);
    }
  }
  for (int r = 0; r < R; r++) {
    float* cr = C + r * rsC;
    for (int v = 0; v < NV; v++) {
      V z = c[v][r];
      if (accumulate) z = ADD(z, LOADU(cr + v * W));
      if (bias != nullptr) z = ADD(z, LOADU(bias + v * W));
      if (act == SWISH_SIG) {
        const V s = DIV(SET1(1.f), onePlusExpNeg(z));
        STOREU(S + r * rsC + v * W, s);
        z = MUL(z, s);
      } else if (act == RELU_MASK) {
        z = RELUMASK(z, LOADU(S + r * rsC + v * W));
      } else if (act != LINEAR) {
        z = activate(z, act);
      }
      STOREU(cr + v * W, z);
    }
  }
}

// The tile for the last rows of a block (fewer than MR).
template <int R, int NV>
static inline void tileRows(int rows, const float* A, long rsA, long csA, const float* P, int kc, float* C, long rsC,
                            const float* bias, bool accumulate, int act, float* S) {
  if (rows == R) tile<R, NV>(A, rsA, csA, P, kc, C, rsC, bias, accumulate, act, S);
  else if constexpr (R > 1) tileRows<R - 1, NV>(rows, A, rsA, csA, P, kc, C, rsC, bias, accumulate, act, S);
}

static void gemm(const float* A, long rsA, long csA, const float* B, long rsB, long csB, float* C, long rsC,
                 int m, int k, int n, const float* bias, int act, float* S, float* pack) {
  const int panels = (n + NR - 1) / NR;
  alignas(64) float edge[MR * NR];  // a partial panel's tile, copied to C's valid columns
  alignas(64) float edgeS[MR * NR];  // its sigmoids (SWISH_SIG), copied to S's; or S's mask (RELU_MASK), copied from it
  alignas(64) float edgeBias[NR];
  // Panel jp covers columns [jp·NR, jp·NR + w); it is packed pw = NR or, when w ≤ W, W floats wide.
  const auto widthOf = [n](int jp) { return n - jp * NR < NR ? n - jp * NR : NR; };
  const auto packedWidth = [](int w) { return w <= W ? W : NR; };
  for (int p0 = 0; p0 < k; p0 += KC) {
    const int kc = k - p0 < KC ? k - p0 : KC;
    const bool accumulate = p0 > 0;
    const bool last = p0 + kc == k;
    // Pack B[p0:p0+kc, :] into panels (zero padded to their packed width).
    for (int jp = 0; jp < panels; jp++) {
      float* P = pack + (long)jp * kc * NR;
      const int j0 = jp * NR;
      const int w = widthOf(jp);
      const int pw = packedWidth(w);
      if (csB == 1 && w == NR) {
        for (int p = 0; p < kc; p++) {
          const float* b = B + (long)(p0 + p) * rsB + j0;
          STORE(P + p * NR, LOADU(b));
          STORE(P + p * NR + W, LOADU(b + W));
        }
      } else {
        for (int p = 0; p < kc; p++)
          for (int jj = w; jj < pw; jj++) P[p * pw + jj] = 0.f;
        for (int jj = 0; jj < w; jj++) {
          const float* b = B + (long)(j0 + jj) * csB + (long)p0 * rsB;
          for (int p = 0; p < kc; p++) P[p * pw + jj] = b[(long)p * rsB];
        }
      }
    }
    // Row blocks of MC rows of A (kept in cache across the panels), then the panels, then tiles.
    for (int i0 = 0; i0 < m; i0 += MC) {
      const int mc = m - i0 < MC ? m - i0 : MC;
      for (int jp = 0; jp < panels; jp++) {
        const float* P = pack + (long)jp * kc * NR;
        const int j0 = jp * NR;
        const int w = widthOf(jp);
        const int pw = packedWidth(w);
        const float* bj = last && bias != nullptr ? bias + j0 : nullptr;
        if (w < pw && bj != nullptr) {
          for (int jj = 0; jj < pw; jj++) edgeBias[jj] = jj < w ? bj[jj] : 0.f;
          bj = edgeBias;
        }
        for (int i = i0; i < i0 + mc; i += MR) {
          const int rows = i0 + mc - i < MR ? i0 + mc - i : MR;
          const float* a = A + (long)i * rsA + (long)p0 * csA;
          float* c = C + (long)i * rsC + j0;
          float* sg = S == nullptr ? nullptr : S + (long)i * rsC + j0;
          const int tileAct = last ? act : LINEAR;
          if (w == pw) {
            if (pw == NR) tileRows<MR, 2>(rows, a, rsA, csA, P, kc, c, rsC, bj, accumulate, tileAct, sg);
            else tileRows<MR, 1>(rows, a, rsA, csA, P, kc, c, rsC, bj, accumulate, tileAct, sg);
          } else {
            if (accumulate)
              for (int r = 0; r < rows; r++)
                for (int jj = 0; jj < pw; jj++) edge[r * pw + jj] = jj < w ? c[(long)r * rsC + jj] : 0.f;
            if (last && act == RELU_MASK)
              for (int r = 0; r < rows; r++)
                for (int jj = 0; jj < pw; jj++) edgeS[r * pw + jj] = jj < w ? sg[(long)r * rsC + jj] : 0.f;
            if (pw == NR) tileRows<MR, 2>(rows, a, rsA, csA, P, kc, edge, pw, bj, accumulate, tileAct, edgeS);
            else tileRows<MR, 1>(rows, a, rsA, csA, P, kc, edge, pw, bj, accumulate, tileAct, edgeS);
            for (int r = 0; r < rows; r++)
              for (int jj = 0; jj < w; jj++) c[(long)r * rsC + jj] = edge[r * pw + jj];
            if (last && act == SWISH_SIG)
              for (int r = 0; r < rows; r++)
                for (int jj = 0; jj < w; jj++) sg[(long)r * rsC + jj] = edgeS[r * pw + jj];
          }
        }
      }
    }
  }
}
}  // namespace NS
