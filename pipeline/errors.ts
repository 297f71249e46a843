// Errors a user can cause (bad file, bad flag, bad column) are UserErrors: the CLI prints their
// one-paragraph message and exits with code 2, without a stack trace. Anything else is a bug.

export class UserError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode = 2) {
    super(message);
    this.name = 'UserError';
    this.exitCode = exitCode;
  }
}

export function isUserError(e: unknown): e is UserError {
  return e instanceof UserError;
}

const DISK_ERRORS: Record<string, string> = {
  ENOSPC: 'the disk is full',
  EDQUOT: 'the disk quota is exceeded',
  EROFS: 'the file system is read-only',
  EACCES: 'permission denied',
  EPERM: 'the operation is not permitted',
  EIO: 'an input/output error on the device',
  EMFILE: 'too many open files',
};

/**
 * A failed write or read of the file system is the user's to fix (space, permissions), not a bug:
 * one line naming the file and the cause. Writers remove their temporary files before the error
 * gets here, so nothing partial is left. Null for any other error.
 */
export function diskErrorMessage(e: unknown): string | null {
  const err = e as NodeJS.ErrnoException | null;
  if (!err || typeof err !== 'object' || typeof err.code !== 'string' || !(err.code in DISK_ERRORS)) return null;
  const where = err.path ? ` ${err.path}` : '';
  return `cannot write or read${where}: ${DISK_ERRORS[err.code]} (${err.code}). Nothing partial was kept; free space or fix the permissions and run again (a run directory continues with --resume).`;
}

/**
 * The user stopped a run (Ctrl-C) and its state was saved: not a failure of the tool. The message
 * says where it stopped and how to continue; the exit code is 130, as for an interrupt.
 */
export class InterruptedError extends UserError {
  constructor(message: string) {
    super(message, 130);
    this.name = 'InterruptedError';
  }
}

/** A config value as an error message shows it: strings quoted, numbers as written (NaN, Infinity), objects as JSON. */
export function showValue(v: unknown): string {
  if (typeof v === 'string') return `'${v}'`;
  if (v === null || typeof v !== 'object') return String(v);
  return JSON.stringify(v) ?? String(v);
}
