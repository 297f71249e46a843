// `mopo inspect <file>`: what a dataset holds, from one streaming pass. Works on a Parquet file
// (any layout readTransitions accepts) or an Arrow shard directory.
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { lastValueFrom, tap } from 'rxjs';
import { datasetStats, type DatasetStats } from '../../operators/datasetStats.js';
import { readParquetInfo, readTransitions } from '../../operators/readTransitions.js';
import { MANIFEST_FILE, readManifest, readShards } from '../../operators/shards.js';
import { ProgressBar } from '../progress.js';
import { UserError } from '../errors.js';
import { readOptionsFrom, type InputArgs } from './inputOptions.js';
import type { ReadOptions } from '../../operators/readTransitions.js';

export interface InspectArgs extends InputArgs {
  file: string;
  json: boolean;
  quiet: boolean;
}

export interface InspectReport extends DatasetStats {
  file: string;
  format: 'parquet' | 'arrow-shards';
  layout: string;
  schema: Array<{ name: string; type: string }>;
  /** Role → source column(s), for Parquet files. */
  columnMapping?: Record<string, string | string[]>;
  rowGroups?: number;
  shards?: number;
  bytes: number;
  warnings: string[];
}

export async function inspectDataset(file: string, opts: { quiet?: boolean; read?: ReadOptions } = {}): Promise<InspectReport> {
  let isDir = false;
  try {
    isDir = statSync(file).isDirectory();
  } catch (e) {
    throw new UserError(`${file}: cannot open (${(e as NodeJS.ErrnoException).code ?? String(e)}). Check the path; inspect takes a Parquet file or a directory of Arrow shards.`);
  }
  const warnings: string[] = [];
  if (isDir) {
    try {
      statSync(join(file, MANIFEST_FILE));
    } catch {
      throw new UserError(`${file}: a directory without ${MANIFEST_FILE}. inspect takes a Parquet file or a directory of Arrow shards written by mopo.`);
    }
    const manifest = await readManifest(file);
    const stats = await runStats(readShards(file), manifest.rows, opts.quiet);
    return {
      file,
      format: 'arrow-shards',
      layout: `arrow shards of stage "${manifest.stage}"`,
      schema: manifest.schema?.columns ?? [],
      shards: manifest.shards.length,
      bytes: manifest.shards.reduce((s, x) => s + x.bytes, 0),
      warnings,
      ...stats,
    };
  }
  const info = await readParquetInfo(file, opts.read);
  warnings.push(...info.warnings);
  const source = readTransitions(file, { ...opts.read, allowNonFinite: true, onWarning: (w) => warnings.includes(w) || warnings.push(w) });
  const stats = await runStats(source, info.transitions, opts.quiet);
  return {
    file,
    format: 'parquet',
    layout: info.layout,
    schema: info.schema.map((f) => ({ name: f.name, type: f.type })),
    columnMapping: info.columns as Record<string, string | string[]>,
    rowGroups: info.rowGroups.length,
    bytes: info.bytes,
    warnings,
    ...stats,
  };
}

async function runStats(source: ReturnType<typeof readShards>, total: number | undefined, quiet = false): Promise<DatasetStats> {
  const bar = new ProgressBar({ label: 'inspect', unit: 'rows', quiet, ...(total !== undefined ? { total } : {}) });
  let rows = 0;
  const stats = await lastValueFrom(
    source.pipe(
      tap((b) => bar.update((rows += b.length))),
      datasetStats(),
    ),
  );
  bar.finish();
  return stats;
}

export async function runInspect(args: InspectArgs): Promise<void> {
  const report = await inspectDataset(args.file, { quiet: args.quiet || args.json, read: readOptionsFrom(args) });
  if (args.json) {
    process.stdout.write(JSON.stringify(report, (_k, v) => (typeof v === 'number' && !Number.isFinite(v) ? null : v)) + '\n');
    return;
  }
  process.stdout.write(formatReport(report));
}

const num = (x: number | undefined | null, digits = 4) => (x === undefined || x === null || Number.isNaN(x) ? '—' : Math.abs(x) >= 1e5 || (Math.abs(x) < 1e-3 && x !== 0) ? x.toExponential(2) : x.toFixed(digits));

export function formatReport(r: InspectReport): string {
  const out: string[] = [];
  out.push(`${r.file}`);
  out.push(`  format      ${r.format}${r.rowGroups !== undefined ? `, ${r.rowGroups} row groups` : ''}${r.shards !== undefined ? `, ${r.shards} shards` : ''}, ${(r.bytes / 1e6).toFixed(1)} MB`);
  out.push(`  layout      ${r.layout}`);
  if (r.columnMapping) {
    const m = Object.entries(r.columnMapping).map(([k, v]) => `${k} ← ${Array.isArray(v) ? (v.length > 2 ? `${v[0]}…${v[v.length - 1]} (${v.length})` : v.join(', ')) : v}`);
    out.push(`  columns     ${m.join('; ')}`);
  }
  out.push(`  env         ${r.env ?? '(not recorded)'}`);
  out.push(`  dims        obs ${r.obsDim}, action ${r.actDim}`);
  out.push(`  rows        ${r.rows} transitions, ${r.episodes} episodes, ${r.terminals} terminals, ${r.timeouts} timeouts`);
  out.push(`  reward      mean ${num(r.reward.mean)}  std ${num(r.reward.std)}  min ${num(r.reward.min)}  max ${num(r.reward.max)}`);
  if (r.episodeReturns) {
    const e = r.episodeReturns;
    out.push(`  returns     ${e.count} episodes: mean ${num(e.mean, 2)}  std ${num(e.std, 2)}  min ${num(e.min, 2)}  max ${num(e.max, 2)}`);
  }
  if (r.episodeLengths) out.push(`  lengths     mean ${num(r.episodeLengths.mean, 1)}  min ${r.episodeLengths.min}  max ${r.episodeLengths.max}`);
  const bad = Object.entries(r.nonFinite).filter(([, n]) => n > 0);
  out.push(`  non-finite  ${bad.length === 0 ? 'none' : bad.map(([c, n]) => `${c}: ${n} (first at row ${r.columns[c]?.firstNonFiniteRow})`).join('; ')}`);
  out.push('');
  out.push(`  ${'column'.padEnd(20)} ${'min'.padStart(10)} ${'max'.padStart(10)} ${'mean'.padStart(10)} ${'std'.padStart(10)}`);
  for (const [name, c] of Object.entries(r.columns)) {
    for (let j = 0; j < c.dim; j++) {
      const label = c.dim > 1 ? `${name}[${j}]` : name;
      out.push(`  ${label.padEnd(20)} ${num(c.min[j]).padStart(10)} ${num(c.max[j]).padStart(10)} ${num(c.mean[j]).padStart(10)} ${num(c.std[j]).padStart(10)}`);
    }
  }
  if (r.warnings.length) {
    out.push('');
    for (const w of r.warnings) out.push(`  note: ${w}`);
  }
  return out.join('\n') + '\n';
}
