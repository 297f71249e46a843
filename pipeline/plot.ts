// Minimal SVG line charts (no dependency): learning curves and statistics over time, written into
// run directories where a person would rather look than read.

export interface Series {
  name: string;
  x: number[];
  y: number[];
  /** Optional ± band around y (e.g. std over evaluation episodes). */
  band?: number[];
  color?: string;
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
}

const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b'];

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

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const fmt = (v: number) => (Math.abs(v) >= 1e4 ? `${(v / 1e3).toFixed(Math.abs(v) >= 1e5 ? 0 : 1)}k` : String(Number(v.toPrecision(4))));

export function lineChartSvg(c: LineChart): string {
  const W = c.width ?? 720;
  const H = c.height ?? 400;
  const m = { l: 70, r: 160, t: 40, b: 50 };
  const xs = c.series.flatMap((s) => s.x);
  const ys = c.series.flatMap((s) => s.y.flatMap((y, i) => (s.band ? [y - s.band[i]!, y + s.band[i]!] : [y])));
  for (const h of c.hlines ?? []) ys.push(h.y);
  let [x0, x1] = xs.length ? [Math.min(...xs), Math.max(...xs)] : [0, 1];
  let [y0, y1] = ys.length ? [Math.min(...ys), Math.max(...ys)] : [0, 1];
  if (x1 === x0) x1 = x0 + 1;
  if (y1 === y0) [y0, y1] = [y0 - 1, y1 + 1];
  const pad = (y1 - y0) * 0.05;
  y0 -= pad;
  y1 += pad;
  const px = (x: number) => m.l + ((x - x0) / (x1 - x0)) * (W - m.l - m.r);
  const py = (y: number) => H - m.b - ((y - y0) / (y1 - y0)) * (H - m.t - m.b);
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  parts.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  parts.push(`<text x="${W / 2 - m.r / 2}" y="22" text-anchor="middle" font-size="15">${esc(c.title)}</text>`);
  for (const t of ticks(x0, x1)) {
    parts.push(`<line x1="${px(t)}" x2="${px(t)}" y1="${m.t}" y2="${H - m.b}" stroke="#eee"/>`);
    parts.push(`<text x="${px(t)}" y="${H - m.b + 16}" text-anchor="middle">${fmt(t)}</text>`);
  }
  for (const t of ticks(y0, y1)) {
    parts.push(`<line x1="${m.l}" x2="${W - m.r}" y1="${py(t)}" y2="${py(t)}" stroke="#eee"/>`);
    parts.push(`<text x="${m.l - 6}" y="${py(t) + 4}" text-anchor="end">${fmt(t)}</text>`);
  }
  parts.push(`<rect x="${m.l}" y="${m.t}" width="${W - m.l - m.r}" height="${H - m.t - m.b}" fill="none" stroke="#333"/>`);
  parts.push(`<text x="${(m.l + W - m.r) / 2}" y="${H - 12}" text-anchor="middle">${esc(c.xLabel)}</text>`);
  parts.push(`<text transform="translate(16 ${(m.t + H - m.b) / 2}) rotate(-90)" text-anchor="middle">${esc(c.yLabel)}</text>`);
  for (const h of c.hlines ?? []) {
    parts.push(`<line x1="${m.l}" x2="${W - m.r}" y1="${py(h.y)}" y2="${py(h.y)}" stroke="#888" stroke-dasharray="5 4"/>`);
    parts.push(`<text x="${W - m.r + 6}" y="${py(h.y) + 4}" fill="#555">${esc(h.label)}</text>`);
  }
  c.series.forEach((s, k) => {
    const color = s.color ?? PALETTE[k % PALETTE.length]!;
    if (s.band && s.x.length > 1) {
      const up = s.x.map((x, i) => `${px(x).toFixed(1)},${py(s.y[i]! + s.band![i]!).toFixed(1)}`);
      const down = s.x.map((x, i) => `${px(x).toFixed(1)},${py(s.y[i]! - s.band![i]!).toFixed(1)}`).reverse();
      parts.push(`<polygon points="${[...up, ...down].join(' ')}" fill="${color}" fill-opacity="0.15" stroke="none"/>`);
    }
    const pts = s.x.map((x, i) => `${px(x).toFixed(1)},${py(s.y[i]!).toFixed(1)}`).join(' ');
    parts.push(`<polyline points="${pts}" fill="none" stroke="${color}" stroke-width="2"/>`);
    for (let i = 0; i < s.x.length; i++) parts.push(`<circle cx="${px(s.x[i]!).toFixed(1)}" cy="${py(s.y[i]!).toFixed(1)}" r="2.5" fill="${color}"/>`);
    parts.push(`<line x1="${W - m.r + 6}" x2="${W - m.r + 26}" y1="${m.t + 10 + 18 * k}" y2="${m.t + 10 + 18 * k}" stroke="${color}" stroke-width="2"/>`);
    parts.push(`<text x="${W - m.r + 30}" y="${m.t + 14 + 18 * k}">${esc(s.name)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n') + '\n';
}
