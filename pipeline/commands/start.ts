// `mopo start` (what `npm start` runs): the main job on a built-in default, needing no input file.
// Today that is the data path every later stage stands on: generate the seeded pendulum-random
// dataset, write it as Parquet, stream it back through readTransitions, tee the batches to Arrow
// shards and compute the dataset statistics in the same pass, and leave a report in the run dir.
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { lastValueFrom, share, tap, forkJoin } from 'rxjs';
import { pendulumRandomDataset } from '../defaultDataset.js';
import { writeTransitionsFile } from '../../operators/writeTransitions.js';
import { readTransitions } from '../../operators/readTransitions.js';
import { writeShards } from '../../operators/shards.js';
import { datasetStats } from '../../operators/datasetStats.js';
import { writeFileAtomic } from '../atomic.js';
import { ProgressBar } from '../progress.js';
import { formatReport, type InspectReport } from './inspect.js';

export interface StartArgs {
  steps: number;
  seed: number;
  out: string;
  quiet: boolean;
}

export async function runStart(args: StartArgs): Promise<void> {
  const out = resolve(args.out);
  mkdirSync(out, { recursive: true });
  const config = { job: 'start', dataset: { generator: 'pendulum-random', steps: args.steps, seed: args.seed } };
  await writeFileAtomic(join(out, 'config.json'), JSON.stringify(config, null, 2) + '\n');
  const t0 = performance.now();

  const datasetPath = join(out, 'pendulum-random.parquet');
  const gen = new ProgressBar({ label: 'generate', total: args.steps, unit: 'steps', quiet: args.quiet });
  let done = 0;
  const written = await writeTransitionsFile(
    datasetPath,
    pendulumRandomDataset({ steps: args.steps, seed: args.seed }).pipe(tap((b) => gen.update((done += b.length)))),
  );
  gen.finish();

  const ingest = new ProgressBar({ label: 'ingest  ', total: written.rows, unit: 'rows', quiet: args.quiet });
  let read = 0;
  const batches = readTransitions(datasetPath).pipe(
    tap((b) => ingest.update((read += b.length))),
    share(),
  );
  // One read of the file feeds both sinks: the shard writer and the statistics.
  const [manifest, stats] = await lastValueFrom(
    forkJoin([batches.pipe(writeShards({ dir: join(out, 'shards'), stage: 'ingest', config, seed: args.seed })), batches.pipe(datasetStats())]),
  );
  ingest.finish();

  const report: InspectReport = {
    file: datasetPath,
    format: 'parquet',
    layout: 'transitions',
    schema: manifest.schema?.columns ?? [],
    bytes: written.bytes,
    rowGroups: written.rowGroups,
    warnings: [],
    ...stats,
  };
  await writeFileAtomic(join(out, 'report.json'), JSON.stringify({ ...report, shardManifest: manifest, seconds: (performance.now() - t0) / 1000 }, null, 2) + '\n');
  process.stdout.write(formatReport(report));
  process.stdout.write(`\nrun directory ${out}: config.json, pendulum-random.parquet, shards/ (${manifest.shards.length} Arrow shards, manifest.json), report.json\n`);
}
