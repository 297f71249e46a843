// A queue script (scripts/<name>.sh, with the runSteps.sh it sources) copied into a temporary
// directory and run there with a stand-in CLI (MOPO=…) that appends its arguments to calls.log and
// leaves the files the real command would: how paperTable.test.ts and penaltySweep.test.ts check
// which steps a queue runs, in what order, and that a second run does nothing.
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));

export interface QueueRun {
  status: number | null;
  stderr: string;
  /** The stand-in's calls, one argument line each, in order. */
  calls: string[];
}

/**
 * A stand-in CLI (bash): appends its arguments to calls.log, sets $out and $run from --out and
 * --run, then runs `body` (which leaves the files the real command would).
 */
export function standIn(body: string): string {
  return `#!/bin/bash
echo "$*" >> calls.log
args=("$@"); out=""; run=""
for ((i = 0; i < \${#args[@]}; i++)); do
  case "\${args[$i]}" in --out) out=\${args[$((i + 1))]};; --run) run=\${args[$((i + 1))]};; esac
done
${body}`;
}

/** A test's body: `run` runs the script in the sandbox `dir` (env added to this process's; args after the script). */
export type QueueTestBody = (run: (env?: Record<string, string>, args?: string[]) => QueueRun, dir: string) => void;

/** Runs `body` with a sandbox holding `script`, the stand-in at ./mopo, and what `setup` adds; removes it after. */
export function withQueueSandbox(
  script: string,
  standIn: string,
  setup: (dir: string) => void,
  body: QueueTestBody,
): void {
  const dir = mkdtempSync(join(tmpdir(), `mopo-${script.replace(/\.sh$/, '').toLowerCase()}-`));
  try {
    mkdirSync(join(dir, 'scripts'));
    for (const f of [script, 'runSteps.sh']) copyFileSync(join(ROOT, 'scripts', f), join(dir, 'scripts', f));
    writeFileSync(join(dir, 'mopo'), standIn);
    chmodSync(join(dir, 'mopo'), 0o755);
    setup(dir);
    const run = (env: Record<string, string> = {}, args: string[] = []): QueueRun => {
      rmSync(join(dir, 'calls.log'), { force: true });
      const r = spawnSync('bash', [`scripts/${script}`, ...args], { cwd: dir, env: { ...process.env, MOPO: join(dir, 'mopo'), ...env }, encoding: 'utf8' });
      const calls = existsSync(join(dir, 'calls.log')) ? readFileSync(join(dir, 'calls.log'), 'utf8').trim().split('\n') : [];
      return { status: r.status, stderr: r.stderr, calls };
    };
    body(run, dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
