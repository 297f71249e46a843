// Moments of a drawn weight tensor, for the initialization tests (ensemble, SAC). Not a test itself
// (`node --test dist/test/` loads it and finds none).
export function weightStats(w: ArrayLike<number>): { mean: number; std: number; max: number } {
  let s = 0, s2 = 0, max = 0;
  for (let i = 0; i < w.length; i++) {
    const x = w[i]!;
    (s += x), (s2 += x * x), (max = Math.max(max, Math.abs(x)));
  }
  const mean = s / w.length;
  return { mean, std: Math.sqrt(s2 / w.length - mean * mean), max };
}
