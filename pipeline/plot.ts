// Minimal SVG charts (no dependency): line charts of learning curves and statistics over time, and
// scatter plots (linear or log axes), written into run directories where a person would rather look
// than read. Static SVG: no script, no external resource, so a page embedding them renders offline.

export interface Series {
  name: string;
  x: number[];
  y: number[];
  /** Optional ± band around y (e.g. std over evaluation episodes). */
  band?: number[];
  color?: string;
  /** Dashed line (and legend swatch): a second grouping beside the colour, e.g. the task. */
  dashed?: boolean;
}

export interface LineChart {
  title: string;
  xLabel: string;
  yLabel: string;
  series: Series[];
  /** Horizontal reference lines (e.g. a target return). */
  hlines?: { y: number; label: string }[];
  width?: number;
  height?: number;
  /** Room right of the plot for the legend (default: the longest series name's, at least 160 px). */
  legendWidth?: number;
  /** A log y axis for values falling by decades (a validation loss); values ≤ 0 are clamped to the smallest positive one. */
  yScale?: 'linear' | 'log';
}

/** Series colours in order: enough for a 7-member ensemble's curves before one repeats. */
export const PALETTE: readonly string[] = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#7f7f7f'];

/** The one dash pattern: reference lines, fitted lines and dashed series look alike. */
const DASH = ' stroke-dasharray="5 4"';

/** "Nice" tick values covering [lo, hi]. */
export function ticks(lo: number, hi: number, count = 6): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-9 * step; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

/**
 * The x of a centred title: over `center`, moved right when a long title would start left of the
 * image (width estimated at 0.55 em a character; the chart is still whole, only the title moves).
 */
function titleX(title: string, center: number, fontSize: number, width: number): number {
  const half = (title.length * fontSize * 0.55) / 2;
  return Math.min(Math.max(center, half + 8), Math.max(width / 2, width - half - 8));
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const fmt = (v: number) => (Math.abs(v) >= 1e4 ? `${(v / 1e3).toFixed(Math.abs(v) >= 1e5 ? 0 : 1)}k` : String(Number(v.toPrecision(4))));

export function lineChartSvg(c: LineChart): string {
  const H = c.height ?? 400;
  // About 7 px a character of the 12 px legend text, after its 30 px swatch.
  const m = { l: 70, r: c.legendWidth ?? Math.max(160, 7 * Math.max(0, ...c.series.map((s) => s.name.length)) + 40), t: 40, b: 50 };
  // A long legend widens the image instead of narrowing the plot below 480 px.
  const W = c.width ?? Math.max(720, m.l + 480 + m.r);
  const xs = c.series.flatMap((s) => s.x);
  const ys = c.series.flatMap((s) => s.y.flatMap((y, i) => (s.band ? [y - s.band[i]!, y + s.band[i]!] : [y])));
  for (const h of c.hlines ?? []) ys.push(h.y);
  const log = c.yScale === 'log';
  const positive = ys.filter((y) => y > 0);
  const floor = positive.length ? Math.min(...positive) : 1;
  // On a log axis the plot works in log10 units: toAxis maps a value there, ticks come back as values.
  const toAxis = log ? (y: number) => Math.log10(Math.max(y, floor)) : (y: number) => y;
  const ts = ys.map(toAxis);
  let [x0, x1] = xs.length ? [Math.min(...xs), Math.max(...xs)] : [0, 1];
  let [y0, y1] = ts.length ? [Math.min(...ts), Math.max(...ts)] : [0, 1];
  if (x1 === x0) x1 = x0 + 1;
  if (y1 === y0) [y0, y1] = [y0 - 1, y1 + 1];
  const pad = (y1 - y0) * 0.05;
  y0 -= pad;
  y1 += pad;
  const px = (x: number) => m.l + ((x - x0) / (x1 - x0)) * (W - m.l - m.r);
  const py = (y: number) => H - m.b - ((toAxis(y) - y0) / (y1 - y0)) * (H - m.t - m.b);
  const yTicks = log ? logTicks(10 ** y0, 10 ** y1) : ticks(y0, y1);
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  parts.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  parts.push(`<text x="${titleX(c.title, W / 2 - m.r / 2, 15, W)}" y="22" text-anchor="middle" font-size="15">${esc(c.title)}</text>`);
  for (const t of ticks(x0, x1)) {
    parts.push(`<line x1="${px(t)}" x2="${px(t)}" y1="${m.t}" y2="${H - m.b}" stroke="#eee"/>`);
    parts.push(`<text x="${px(t)}" y="${H - m.b + 16}" text-anchor="middle">${fmt(t)}</text>`);
  }
  for (const v of yTicks) {
    parts.push(`<line x1="${m.l}" x2="${W - m.r}" y1="${py(v)}" y2="${py(v)}" stroke="#eee"/>`);
    parts.push(`<text x="${m.l - 6}" y="${py(v) + 4}" text-anchor="end">${log ? fmtTick(v) : fmt(v)}</text>`);
  }
  parts.push(`<rect x="${m.l}" y="${m.t}" width="${W - m.l - m.r}" height="${H - m.t - m.b}" fill="none" stroke="#333"/>`);
  parts.push(`<text x="${(m.l + W - m.r) / 2}" y="${H - 12}" text-anchor="middle">${esc(c.xLabel)}</text>`);
  parts.push(`<text transform="translate(16 ${(m.t + H - m.b) / 2}) rotate(-90)" text-anchor="middle">${esc(c.yLabel)}</text>`);
  for (const h of c.hlines ?? []) {
    parts.push(`<line x1="${m.l}" x2="${W - m.r}" y1="${py(h.y)}" y2="${py(h.y)}" stroke="#888"${DASH}/>`);
    // Labelled inside the plot, just above the line at its right end: the margin holds the legend.
    parts.push(`<text x="${W - m.r - 6}" y="${py(h.y) - 5}" text-anchor="end" fill="#555">${esc(h.label)}</text>`);
  }
  c.series.forEach((s, k) => {
    const color = s.color ?? PALETTE[k % PALETTE.length]!;
    if (s.band && s.x.length > 1) {
      const up = s.x.map((x, i) => `${px(x).toFixed(1)},${py(s.y[i]! + s.band![i]!).toFixed(1)}`);
      const down = s.x.map((x, i) => `${px(x).toFixed(1)},${py(s.y[i]! - s.band![i]!).toFixed(1)}`).reverse();
      parts.push(`<polygon points="${[...up, ...down].join(' ')}" fill="${color}" fill-opacity="0.15" stroke="none"/>`);
    }
    const pts = s.x.map((x, i) => `${px(x).toFixed(1)},${py(s.y[i]!).toFixed(1)}`).join(' ');
    const dash = s.dashed ? DASH : '';
    parts.push(`<polyline points="${pts}" fill="none" stroke="${color}" stroke-width="2"${dash}/>`);
    for (let i = 0; i < s.x.length; i++) parts.push(`<circle cx="${px(s.x[i]!).toFixed(1)}" cy="${py(s.y[i]!).toFixed(1)}" r="2.5" fill="${color}"/>`);
    parts.push(`<line x1="${W - m.r + 6}" x2="${W - m.r + 26}" y1="${m.t + 10 + 18 * k}" y2="${m.t + 10 + 18 * k}" stroke="${color}" stroke-width="2"${dash}/>`);
    parts.push(`<text x="${W - m.r + 30}" y="${m.t + 14 + 18 * k}">${esc(s.name)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n') + '\n';
}

// ---------------------------------------------------------------------------------------------
// Scatter plots

export interface ScatterSeries {
  name: string;
  x: ArrayLike<number>;
  y: ArrayLike<number>;
  color?: string;
}

export interface ScatterChart {
  title: string;
  xLabel: string;
  yLabel: string;
  series: ScatterSeries[];
  xScale?: 'linear' | 'log';
  yScale?: 'linear' | 'log';
  /** Reference lines y = slope·x + intercept across the plot (e.g. a bound y = λx). */
  lines?: { slope: number; intercept?: number; label: string; color?: string }[];
  width?: number;
  height?: number;
  /** Room right of the plot for the legend (default 170 px). */
  legendWidth?: number;
  /** Point radius (default 2) and fill opacity (default 0.45). */
  radius?: number;
  opacity?: number;
  /** Most points drawn per series: beyond it an evenly strided subsample (default 1500). */
  maxPoints?: number;
}

/** Tick values of a log axis over [lo, hi] (positive): decades, with 2 and 5 between when few. */
export function logTicks(lo: number, hi: number): number[] {
  if (!(lo > 0) || !(hi >= lo)) return [];
  const a = Math.floor(Math.log10(lo));
  const b = Math.ceil(Math.log10(hi));
  const mults = b - a <= 3 ? [1, 2, 5] : [1];
  const step = Math.max(1, Math.ceil((b - a) / 8));
  const out: number[] = [];
  for (let k = a; k <= b; k += step) {
    for (const m of mults) {
      const v = Number((m * 10 ** k).toPrecision(12));
      if (v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9)) out.push(v);
    }
  }
  return out;
}

const fmtTick = (v: number) => (v !== 0 && (Math.abs(v) < 1e-3 || Math.abs(v) >= 1e6) ? v.toExponential(0).replace('e+', 'e') : fmt(v));

/**
 * A scatter plot as static SVG. Points that cannot be drawn (non-finite, or ≤ 0 on a log axis) are
 * left out and counted in a note under the title; so are points beyond `maxPoints` a series (an
 * evenly strided subsample is drawn, noted too).
 */
export function scatterSvg(c: ScatterChart): string {
  const W = c.width ?? 460;
  const H = c.height ?? 360;
  const m = { l: 64, r: c.legendWidth ?? 170, t: 46, b: 46 };
  const xLog = c.xScale === 'log';
  const yLog = c.yScale === 'log';
  const maxPoints = c.maxPoints ?? 1500;
  const tx = (v: number) => (xLog ? Math.log10(v) : v);
  const ty = (v: number) => (yLog ? Math.log10(v) : v);
  const ok = (x: number, y: number) => Number.isFinite(x) && Number.isFinite(y) && (!xLog || x > 0) && (!yLog || y > 0);
  let hidden = 0;
  let strided = false;
  const drawn = c.series.map((s) => {
    const n = Math.min(s.x.length, s.y.length);
    const idx: number[] = [];
    for (let i = 0; i < n; i++) {
      if (ok(s.x[i]!, s.y[i]!)) idx.push(i);
      else hidden++;
    }
    let keep = idx;
    if (idx.length > maxPoints) {
      strided = true;
      keep = Array.from({ length: maxPoints }, (_, k) => idx[Math.floor((k * idx.length) / maxPoints)]!);
    }
    return { s, total: idx.length, px: keep.map((i) => tx(s.x[i]!)), py: keep.map((i) => ty(s.y[i]!)) };
  });
  const allX = drawn.flatMap((d) => d.px);
  const allY = drawn.flatMap((d) => d.py);
  const range = (v: number[]): [number, number] => {
    let lo = Infinity;
    let hi = -Infinity;
    for (const x of v) {
      if (x < lo) lo = x;
      if (x > hi) hi = x;
    }
    if (!(hi >= lo)) return [0, 1];
    if (hi === lo) return [lo - 0.5, hi + 0.5];
    const pad = (hi - lo) * 0.04;
    return [lo - pad, hi + pad];
  };
  const [x0, x1] = range(allX);
  const [y0, y1] = range(allY);
  const pw = W - m.l - m.r;
  const ph = H - m.t - m.b;
  const sx = (u: number) => m.l + ((u - x0) / (x1 - x0)) * pw;
  const sy = (u: number) => H - m.b - ((u - y0) / (y1 - y0)) * ph;
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="11">`);
  parts.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  parts.push(`<text x="${titleX(c.title, m.l + pw / 2, 13, W)}" y="18" text-anchor="middle" font-size="13">${esc(c.title)}</text>`);
  const notes: string[] = [];
  if (hidden > 0) notes.push(`${hidden} point${hidden === 1 ? '' : 's'} ${xLog || yLog ? '≤ 0 or non-finite' : 'non-finite'} not shown`);
  if (strided) notes.push(`at most ${maxPoints} points a series drawn`);
  if (notes.length) parts.push(`<text x="${m.l + pw / 2}" y="34" text-anchor="middle" fill="#666" font-size="10">${esc(notes.join('; '))}</text>`);
  const xt = xLog ? logTicks(10 ** x0, 10 ** x1) : ticks(x0, x1, 5);
  const yt = yLog ? logTicks(10 ** y0, 10 ** y1) : ticks(y0, y1, 5);
  for (const t of xt) {
    const p = sx(tx(t)).toFixed(1);
    parts.push(`<line x1="${p}" x2="${p}" y1="${m.t}" y2="${H - m.b}" stroke="#eee"/>`);
    parts.push(`<text x="${p}" y="${H - m.b + 15}" text-anchor="middle">${fmtTick(t)}</text>`);
  }
  for (const t of yt) {
    const p = sy(ty(t)).toFixed(1);
    parts.push(`<line x1="${m.l}" x2="${W - m.r}" y1="${p}" y2="${p}" stroke="#eee"/>`);
    parts.push(`<text x="${m.l - 5}" y="${(Number(p) + 4).toFixed(1)}" text-anchor="end">${fmtTick(t)}</text>`);
  }
  parts.push(`<rect x="${m.l}" y="${m.t}" width="${pw}" height="${ph}" fill="none" stroke="#333"/>`);
  parts.push(`<text x="${m.l + pw / 2}" y="${H - 10}" text-anchor="middle">${esc(c.xLabel)}${xLog ? ' (log)' : ''}</text>`);
  parts.push(`<text transform="translate(14 ${m.t + ph / 2}) rotate(-90)" text-anchor="middle">${esc(c.yLabel)}${yLog ? ' (log)' : ''}</text>`);
  const r = c.radius ?? 2;
  const op = c.opacity ?? 0.45;
  drawn.forEach((d, k) => {
    const color = d.s.color ?? PALETTE[k % PALETTE.length]!;
    parts.push(`<g fill="${color}" fill-opacity="${op}">`);
    for (let i = 0; i < d.px.length; i++) parts.push(`<circle cx="${sx(d.px[i]!).toFixed(1)}" cy="${sy(d.py[i]!).toFixed(1)}" r="${r}"/>`);
    parts.push('</g>');
    const ly = m.t + 10 + 18 * k;
    parts.push(`<circle cx="${W - m.r + 14}" cy="${ly}" r="4" fill="${color}"/>`);
    parts.push(`<text x="${W - m.r + 24}" y="${ly + 4}">${esc(`${d.s.name} (${d.total})`)}</text>`);
  });
  // Reference lines, sampled across the x range and cut where they leave the plot.
  (c.lines ?? []).forEach((l, k) => {
    const color = l.color ?? '#444';
    const runs: string[][] = [];
    let cur: string[] = [];
    for (let i = 0; i <= 200; i++) {
      const u = x0 + ((x1 - x0) * i) / 200;
      const x = xLog ? 10 ** u : u;
      const y = l.slope * x + (l.intercept ?? 0);
      const v = yLog ? (y > 0 ? Math.log10(y) : Number.NaN) : y;
      if (v >= y0 && v <= y1) cur.push(`${sx(u).toFixed(1)},${sy(v).toFixed(1)}`);
      else if (cur.length) {
        runs.push(cur);
        cur = [];
      }
    }
    if (cur.length) runs.push(cur);
    for (const pts of runs) if (pts.length > 1) parts.push(`<polyline points="${pts.join(' ')}" fill="none" stroke="${color}" stroke-width="1.5"${DASH}/>`);
    const ly = m.t + 10 + 18 * (c.series.length + k);
    parts.push(`<line x1="${W - m.r + 6}" x2="${W - m.r + 22}" y1="${ly}" y2="${ly}" stroke="${color}" stroke-width="1.5"${DASH}/>`);
    parts.push(`<text x="${W - m.r + 24}" y="${ly + 4}">${esc(l.label)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n') + '\n';
}
