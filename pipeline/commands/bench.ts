// `mopo bench <what>`: speed targets live in benchmarks, never in timed tests. Each prints one JSON
// object (with --json, nothing else on stdout) so runs can be compared by script.
import { initBackend } from '../backend.js';
import { benchDense, variantsReport } from '../../bench/dense.js';
import { benchIngest } from '../../bench/ingest.js';
import { benchEnv } from '../../bench/env.js';
import { benchSac } from '../../bench/sac.js';
import { benchEnsemble } from '../../bench/ensemble.js';
import { benchBuffer } from '../../bench/buffer.js';
import { benchTrain } from '../../bench/train.js';
import { benchMemory } from '../../bench/memory.js';

export interface BenchArgs {
  what: 'dense' | 'ingest' | 'env' | 'sac' | 'ensemble' | 'buffer' | 'train' | 'memory';
  json: boolean;
  rows?: number | undefined;
  seconds?: number | undefined;
  variants?: boolean | undefined;
  vectorLayout?: string | undefined;
  compression?: string | undefined;
  fullEnsemble?: boolean | undefined;
  cacheDir?: string | undefined;
  backend?: string | undefined;
  quiet: boolean;
}

export async function runBench(args: BenchArgs): Promise<void> {
  const log = args.quiet ? () => {} : (m: string) => process.stderr.write(m + '\n');
  let result: unknown;
  if (args.what === 'dense') {
    await initBackend({ ...(args.backend ? { backend: args.backend as 'node' | 'wasm' | 'cpu' } : {}), log });
    result = await benchDense({ ...(args.seconds !== undefined ? { seconds: args.seconds } : {}) });
    if (args.variants) for (const line of await variantsReport(args.seconds)) process.stderr.write(line + '\n');
  } else if (args.what === 'sac') {
    await initBackend({ ...(args.backend ? { backend: args.backend as 'node' | 'wasm' | 'cpu' } : {}), log });
    result = await benchSac({ ...(args.seconds !== undefined ? { seconds: args.seconds } : {}) });
  } else if (args.what === 'ensemble') {
    await initBackend({ ...(args.backend ? { backend: args.backend as 'node' | 'wasm' | 'cpu' } : {}), log });
    result = await benchEnsemble({ ...(args.seconds !== undefined ? { seconds: args.seconds } : {}), ...(args.rows !== undefined ? { predictRows: args.rows } : {}) });
  } else if (args.what === 'buffer') {
    await initBackend({ ...(args.backend ? { backend: args.backend as 'node' | 'wasm' | 'cpu' } : {}), log });
    result = await benchBuffer();
  } else if (args.what === 'train') {
    await initBackend({ ...(args.backend ? { backend: args.backend as 'node' | 'wasm' | 'cpu' } : {}), log });
    result = await benchTrain({ ...(args.rows !== undefined ? { rolloutBatch: args.rows } : {}) });
  } else if (args.what === 'memory') {
    result = await benchMemory({
      ...(args.rows !== undefined ? { rows: args.rows } : {}),
      ...(args.fullEnsemble ? { fullEnsemble: true } : {}),
      ...(args.cacheDir ? { cacheDir: args.cacheDir } : {}),
      ...(args.backend ? { backend: args.backend } : {}),
      log,
    });
  } else if (args.what === 'env') {
    result = await benchEnv({ ...(args.rows !== undefined ? { steps: args.rows } : {}) });
  } else {
    result = await benchIngest({
      ...(args.rows !== undefined ? { rows: args.rows } : {}),
      ...(args.vectorLayout ? { vectorLayout: args.vectorLayout as 'columns' | 'fixed-size-list' } : {}),
      ...(args.compression ? { compression: args.compression as 'snappy' | 'zstd' | 'gzip' | 'lz4' | 'none' } : {}),
    });
  }
  if (args.json) process.stdout.write(JSON.stringify(result) + '\n');
  else process.stdout.write(JSON.stringify(result, null, 2) + '\n');
}
