// `mopo run <pipeline.json> [--set path=value …]`: runs a pipeline file (pipeline/pipelineFile.ts)
// into a run directory; `--resume <run-dir>` continues one from its last checkpoint.
import { basename, join, resolve } from 'node:path';
import { initBackend } from '../backend.js';
import { loadPipelineFile } from '../pipelineFile.js';
import { UserError } from '../errors.js';
import { runPipelineCommand } from './train.js';

export interface RunArgs {
  pipeline?: string | undefined;
  set?: (string | number)[] | undefined;
  out?: string | undefined;
  resume?: string | undefined;
  backend?: string | undefined;
  quiet: boolean;
}

export async function runRun(args: RunArgs): Promise<void> {
  const log = args.quiet ? () => {} : (m: string) => process.stderr.write(m + '\n');
  if (args.resume) {
    if (args.pipeline || args.set?.length) throw new UserError('--resume continues a run with the pipeline.json in its directory; drop the pipeline file and --set');
    const backend = await initBackend({ ...(args.backend ? { backend: args.backend } : {}), log });
    await runPipelineCommand(resolve(args.resume), null, { resume: true, quiet: args.quiet, backend, log, command: 'run' });
    return;
  }
  if (!args.pipeline) throw new UserError('name a pipeline file (e.g. mopo run data/pipelines/halfcheetah-random-quick.json), or --resume <run-dir>');
  const parsed = loadPipelineFile(args.pipeline, (args.set ?? []).map(String));
  const backend = await initBackend({ ...(args.backend ? { backend: args.backend } : {}), log });
  const name = parsed.file.name ?? basename(args.pipeline).replace(/\.json$/i, '');
  const runDir = resolve(args.out ?? join('runs', `${name}-seed${parsed.file.seed ?? 0}`));
  await runPipelineCommand(runDir, parsed, { resume: false, quiet: args.quiet, backend, log, command: 'run' });
}
