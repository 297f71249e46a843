// Whether a module is the script node was started with, for files that are both a library and a
// command. Both sides are real paths, so a script run through a symlinked directory (a sandbox's
// `dist`, a linked checkout) still runs.
import { realpathSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export function isMain(moduleUrl: string): boolean {
  const started = process.argv[1];
  if (!started) return false;
  try {
    return realpathSync(resolve(started)) === realpathSync(fileURLToPath(moduleUrl));
  } catch {
    return false; // node started from a path that no longer exists: not this module
  }
}
