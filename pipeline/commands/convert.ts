// `mopo convert <input> <output>`: any dataset readTransitions accepts → the project's own Parquet
// (fast to re-read) or an Arrow shard directory, streaming with bounded memory, atomically.
import { lastValueFrom, tap } from 'rxjs';
import { readParquetInfo, readTransitions } from '../../operators/readTransitions.js';
import { writeTransitions, type Compression } from '../../operators/writeTransitions.js';
import { writeShards } from '../../operators/shards.js';
import { ProgressBar } from '../progress.js';
import { readOptionsFrom, type InputArgs } from './inputOptions.js';

export interface ConvertArgs extends InputArgs {
  input: string;
  output: string;
  to?: string | undefined;
  allowNonFinite: boolean;
  compression: string;
  rowsPerShard?: number | undefined;
  quiet: boolean;
}

export async function runConvert(args: ConvertArgs): Promise<void> {
  const to = args.to ?? (args.output.endsWith('.parquet') ? 'parquet' : 'shards');
  const warn = (m: string) => args.quiet || process.stderr.write(`mopo: note: ${m}\n`);
  const readOpts = { ...readOptionsFrom(args), allowNonFinite: args.allowNonFinite, onWarning: warn };
  const info = await readParquetInfo(args.input, readOpts);
  const bar = new ProgressBar({ label: 'convert', unit: 'rows', quiet: args.quiet, ...(info.transitions !== undefined ? { total: info.transitions } : {}) });
  let rows = 0;
  const source = readTransitions(args.input, readOpts).pipe(tap((b) => bar.update((rows += b.length))));
  let summary: string;
  if (to === 'parquet') {
    const w = await lastValueFrom(source.pipe(writeTransitions(args.output, { compression: args.compression as Compression })));
    bar.finish();
    summary = `${w.rows} transitions → ${w.path} (${w.rowGroups} row groups, ${(w.bytes / 1e6).toFixed(1)} MB)`;
  } else {
    const config = { input: args.input, read: { ...readOpts, onWarning: undefined } };
    const m = await lastValueFrom(source.pipe(writeShards({ dir: args.output, stage: 'convert', config, ...(args.rowsPerShard ? { rowsPerShard: args.rowsPerShard } : {}) })));
    bar.finish();
    summary = `${m.rows} transitions → ${args.output} (${m.shards.length} Arrow shards + manifest.json)`;
  }
  process.stdout.write(summary + '\n');
}
