// The setup the end-to-end tests on a tiny Pendulum MOPO run share (mopo, replay, diagnosePenalty,
// killTest): the backend, a temporary directory that is removed whatever happens, and a random-policy
// Pendulum dataset in it. Not a test itself (`node --test dist/test/` loads it and finds none).
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initBackend, type BackendName } from '../pipeline/backend.js';
import { pendulumRandomDataset } from '../pipeline/defaultDataset.js';
import { writeTransitionsFile } from '../operators/writeTransitions.js';

export interface PendulumFixture {
  /** The temporary directory (removed after the test body). */
  dir: string;
  /** <dir>/p.parquet: `steps` rows of random-policy Pendulum data. */
  dataset: string;
  backend: BackendName;
}

/**
 * Runs `body` with a fresh temporary directory (named `prefix`…) holding a Pendulum dataset of
 * `steps` rows drawn with `seed`, and removes the directory afterwards, also when `body` fails.
 */
export async function withPendulumDataset<T>(prefix: string, data: { steps: number; seed: number }, body: (f: PendulumFixture) => Promise<T>): Promise<T> {
  const backend = await initBackend({ log: () => {} });
  const dir = mkdtempSync(join(tmpdir(), prefix));
  try {
    const dataset = join(dir, 'p.parquet');
    await writeTransitionsFile(dataset, pendulumRandomDataset(data));
    return await body({ dir, dataset, backend });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The lines of a JSON Lines file (metrics.jsonl), parsed. */
export function readJsonl<T>(path: string): T[] {
  return readFileSync(path, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as T);
}
