// The command line shared by the Results tables' scripts (paperResults, penaltyTable): run
// directories in, a Markdown table (or with --json, the rows) out, and with --svg <file> a figure
// where the script draws one; directories that are not the script's kind of run are counted and left
// out.
import { readFileSync } from 'node:fs';
import { writeFileAtomicSync } from '../pipeline/atomic.js';

export const readJson = <T>(p: string): T => JSON.parse(readFileSync(p, 'utf8')) as T;

/** One decimal, or n/a. */
export const f1 = (x: number | null) => (x === null ? 'n/a' : x.toFixed(1));

export function tableScriptMain<Run, Row>(o: { script: string; kind: string; read: (dir: string) => Run | null; rows: (runs: Run[]) => Row[]; markdown: (rows: Row[]) => string; svg?: (rows: Row[]) => string }): void {
  const args = process.argv.slice(2);
  const usage = `usage: node dist/scripts/${o.script}.js <run-dir>... [--json]${o.svg ? ' [--svg <file>]' : ''}\n`;
  const json = args.includes('--json');
  const svgAt = args.indexOf('--svg');
  const svgFile = svgAt >= 0 ? args[svgAt + 1] : undefined;
  if (svgAt >= 0 && (!o.svg || svgFile === undefined || svgFile.startsWith('--'))) {
    process.stderr.write(o.svg ? `--svg needs a file to write the figure to\n${usage}` : `${o.script} draws no figure: --svg is not an option\n${usage}`);
    process.exit(2);
  }
  const dirs = args.filter((a, i) => a !== '--json' && !(svgAt >= 0 && (i === svgAt || i === svgAt + 1)));
  if (dirs.length === 0) {
    process.stderr.write(usage);
    process.exit(2);
  }
  const runs = dirs.map(o.read).filter((r): r is Run => r !== null);
  const skipped = dirs.length - runs.length;
  if (skipped > 0) process.stderr.write(`${skipped} of ${dirs.length} directories are not ${o.kind}; left out\n`);
  const rows = o.rows(runs);
  if (svgFile !== undefined) {
    writeFileAtomicSync(svgFile, o.svg!(rows));
    process.stderr.write(`figure: ${svgFile}\n`);
  }
  process.stdout.write(json ? JSON.stringify(rows, null, 2) + '\n' : o.markdown(rows));
}
