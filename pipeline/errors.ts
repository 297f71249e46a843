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
