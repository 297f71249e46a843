// Ctrl-C for long jobs: the first interrupt asks the job to stop at its next safe point (the end of
// an epoch, after its checkpoint); a second exits at once, keeping the last complete checkpoint.

/** Runs `job` with `stopRequested` turned true by the first SIGINT; `where` says when it will stop. */
export async function withCtrlC<T>(where: string, job: (stopRequested: () => boolean) => Promise<T>): Promise<T> {
  let stop = false;
  const onSigint = () => {
    if (stop) {
      process.stderr.write('\nmopo: second interrupt, exiting now; the last complete checkpoint is kept\n');
      process.exit(130);
    }
    stop = true;
    process.stderr.write(`\nmopo: interrupted; stopping ${where} (Ctrl-C again to exit at once)\n`);
  };
  process.on('SIGINT', onSigint);
  try {
    return await job(() => stop);
  } finally {
    process.off('SIGINT', onSigint);
  }
}
