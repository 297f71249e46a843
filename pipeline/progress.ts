// A progress bar for long work, on stderr: redrawn in place on a terminal (at most 10 times a
// second), and as an occasional plain line when stderr is a file or pipe, so logs stay readable.

export interface ProgressOptions {
  label: string;
  /** Total units of work, when known (enables the bar, percentage and ETA). */
  total?: number;
  unit?: string;
  stream?: NodeJS.WriteStream;
  /** Suppress all output. */
  quiet?: boolean;
  /** Units already done when this bar starts (a resumed run): the rate and ETA count only new work. */
  initial?: number;
  /** Milliseconds clock (tests); default performance.now. */
  clock?: () => number;
}

export class ProgressBar {
  private readonly opts: ProgressOptions;
  private readonly stream: NodeJS.WriteStream;
  private readonly tty: boolean;
  private readonly now: () => number;
  private readonly start: number;
  private lastDraw = 0;
  private done = 0;
  private extra = '';
  private finished = false;

  constructor(opts: ProgressOptions) {
    this.opts = opts;
    this.stream = opts.stream ?? process.stderr;
    this.tty = Boolean(this.stream.isTTY);
    this.now = opts.clock ?? (() => performance.now());
    this.start = this.now();
  }

  update(done: number, extra = ''): void {
    this.done = done;
    this.extra = extra;
    const now = this.now();
    const interval = this.tty ? 100 : 10_000;
    if (now - this.lastDraw >= interval) {
      this.lastDraw = now;
      this.draw(false);
    }
  }

  /** `complete: false` (work stopped early, e.g. by Ctrl-C) keeps the count where it got to; otherwise the bar ends full. */
  finish(extra?: string, opts: { complete?: boolean } = {}): void {
    if (this.finished) return;
    this.finished = true;
    if (extra !== undefined) this.extra = extra;
    if (this.opts.total !== undefined && opts.complete !== false) this.done = Math.max(this.done, this.opts.total);
    this.draw(true);
  }

  private draw(final: boolean): void {
    if (this.opts.quiet) return;
    const elapsed = (this.now() - this.start) / 1000;
    const unit = this.opts.unit ?? '';
    const rate = elapsed > 0 ? Math.max(0, this.done - (this.opts.initial ?? 0)) / elapsed : 0;
    let line = `${this.opts.label} `;
    const total = this.opts.total;
    if (total !== undefined && total > 0) {
      const frac = Math.min(1, this.done / total);
      const width = 24;
      const full = Math.round(frac * width);
      line += `[${'#'.repeat(full)}${'-'.repeat(width - full)}] ${(frac * 100).toFixed(0).padStart(3)}% ${fmt(this.done)}/${fmt(total)}${unit ? ' ' + unit : ''}`;
      if (!final && rate > 0) line += ` ETA ${fmtTime((total - this.done) / rate)}`;
    } else {
      line += `${fmt(this.done)}${unit ? ' ' + unit : ''}`;
    }
    // Slow work (minutes an epoch) reads better as time per unit than as 0.0 units/s.
    if (rate > 0 && rate < 0.1) line += ` ${fmtTime(1 / rate)}/${unit.replace(/s$/, '') || 'unit'}`;
    else line += ` ${fmt(rate)}${unit ? ' ' + unit : ''}/s`;
    line += ` ${fmtTime(elapsed)}`;
    if (this.extra) line += ` ${this.extra}`;
    if (this.tty) this.stream.write(`\r\x1b[K${line}${final ? '\n' : ''}`);
    else this.stream.write(line + '\n');
  }
}

function fmt(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  if (Math.abs(x) >= 1e6) return `${(x / 1e6).toFixed(2)}M`;
  if (Math.abs(x) >= 1e4) return `${(x / 1e3).toFixed(1)}k`;
  return Number.isInteger(x) ? String(x) : x.toFixed(1);
}

function fmtTime(s: number): string {
  if (!Number.isFinite(s)) return '?';
  if (s < 60) return `${s.toFixed(1)}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(Math.floor(s % 60)).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}
