// The few statistics every benchmark reports with: timings on a shared, noisy machine are
// summarized by their median, and figures are rounded to three decimals for the JSON output.

/** Median of a list (NaN when empty); does not reorder the input. */
export function median(xs: readonly number[]): number {
  const s = xs.slice().sort((a, b) => a - b);
  const n = s.length;
  if (n === 0) return NaN;
  return n % 2 === 1 ? s[(n - 1) / 2]! : (s[n / 2 - 1]! + s[n / 2]!) / 2;
}

/** Rounded to three decimals. */
export function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}
