// The command line shared by the Results tables' scripts (paperResults, penaltyTable): run
// directories in, a Markdown table (or with --json, the rows) out; directories that are not the
// script's kind of run are counted and left out.
import { readFileSync } from 'node:fs';

export const readJson = <T>(p: string): T => JSON.parse(readFileSync(p, 'utf8')) as T;

/** One decimal, or n/a. */
export const f1 = (x: number | null) => (x === null ? 'n/a' : x.toFixed(1));

export function tableScriptMain<Run, Row>(o: { script: string; kind: string; read: (dir: string) => Run | null; rows: (runs: Run[]) => Row[]; markdown: (rows: Row[]) => string }): void {
  const args = process.argv.slice(2);
  const json = args.includes('--json');
  const dirs = args.filter((a) => a !== '--json');
  if (dirs.length === 0) {
    process.stderr.write(`usage: node dist/scripts/${o.script}.js <run-dir>... [--json]\n`);
    process.exit(2);
  }
  const runs = dirs.map(o.read).filter((r): r is Run => r !== null);
  const skipped = dirs.length - runs.length;
  if (skipped > 0) process.stderr.write(`${skipped} of ${dirs.length} directories are not ${o.kind}; left out\n`);
  const rows = o.rows(runs);
  process.stdout.write(json ? JSON.stringify(rows, null, 2) + '\n' : o.markdown(rows));
}
