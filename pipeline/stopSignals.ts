// Ctrl-C (SIGINT) and SIGTERM for long jobs: the first asks the job to stop at its next safe point
// (the end of an epoch, after its checkpoint); a second exits at once, keeping the last complete
// checkpoint. SIGTERM is what `kill`, `docker stop`, systemd and batch schedulers send before they
// kill, so a run stopped that way keeps its last epoch as a Ctrl-C'd one does.

const STOP_SIGNALS = ['SIGINT', 'SIGTERM'] as const;

/** Runs `job` with `stopRequested` turned true by the first SIGINT or SIGTERM; `where` says when it will stop. */
export async function withStopSignals<T>(where: string, job: (stopRequested: () => boolean) => Promise<T>): Promise<T> {
  let stop = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stop) {
      process.stderr.write(`\nmopo: second stop signal (${signal}), exiting now; the last complete checkpoint is kept\n`);
      process.exit(130);
    }
    stop = true;
    process.stderr.write(`\nmopo: interrupted (${signal}); stopping ${where} (a second Ctrl-C or SIGTERM exits at once)\n`);
  };
  for (const s of STOP_SIGNALS) process.on(s, onSignal);
  try {
    return await job(() => stop);
  } finally {
    for (const s of STOP_SIGNALS) process.off(s, onSignal);
  }
}
