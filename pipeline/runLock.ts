// One writer per run directory: a LOCK file holding the writer's pid, host and start time, created
// exclusively. A second run into the same directory is refused with the holder's pid; a lock whose
// holder is no longer running (a killed run) is stale and is taken over, and what the killed run
// left half-written is swept: temporary files of dead processes, checkpoint directories that
// latest.json does not point at, an unfinished swap of the ensemble's training state, shard sets
// that never completed, and the locks of nested writers (the ensemble trained in <run>/dynamics)
// killed with it.
import { existsSync, openSync, closeSync, readFileSync, readdirSync, rmSync, statSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { UserError } from './errors.js';
import { TEMP_FILE_NAME } from './atomic.js';

export const LOCK_FILE = 'LOCK';

interface LockInfo {
  pid: number;
  host: string;
  started: string;
}

/** A lock file's holder; null when the file is missing or unreadable (written by a process killed mid-write). */
function readLock(path: string): LockInfo | null {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as LockInfo;
  } catch {
    return null;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export interface RunLock {
  /** What the lock replaced, if it was stale. */
  stale: LockInfo | null;
  release(): void;
}

/** Takes the run directory's lock (the directory must exist). */
export function acquireRunLock(dir: string, log: (m: string) => void = () => {}): RunLock {
  const path = join(dir, LOCK_FILE);
  const me: LockInfo = { pid: process.pid, host: hostname(), started: new Date().toISOString() };
  let stale: LockInfo | null = null;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = openSync(path, 'wx');
      writeSync(fd, JSON.stringify(me) + '\n');
      closeSync(fd);
      const release = () => {
        const cur = readLock(path); // null: already gone
        if (cur && cur.pid === me.pid && cur.host === me.host) rmSync(path, { force: true });
        process.removeListener('exit', release);
      };
      process.once('exit', release);
      return { stale, release };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    const holder = readLock(path);
    if (holder && holder.host !== me.host) {
      throw new UserError(`${dir} is locked by pid ${holder.pid} on ${holder.host} (since ${holder.started}); if that run is gone, delete ${path}`);
    }
    if (holder && alive(holder.pid) && holder.pid !== process.pid) {
      throw new UserError(`${dir} is in use by another mopo process (pid ${holder.pid}, since ${holder.started}); wait for it to finish or stop it, or choose another --out`);
    }
    stale = holder;
    log(`${dir}: taking over a stale lock${holder ? ` of pid ${holder.pid} (started ${holder.started}, no longer running)` : ' (unreadable)'}`);
    rmSync(path, { force: true });
  }
  throw new UserError(`${dir}: could not take the lock (${path}); another process keeps creating it`);
}


/** Whether a holder read from a lock file (null: unreadable, left by a killed writer) is gone: on this host and no longer running. */
function isStale(holder: LockInfo | null): boolean {
  return holder === null || (holder.host === hostname() && holder.pid !== process.pid && !alive(holder.pid));
}

/** A lock file whose holder (on this host) is no longer running, or that a killed writer left unreadable. */
function isStaleLock(path: string): boolean {
  return isStale(readLock(path));
}

/** Who is writing `dir` now: its lock's holder, unless the lock is missing or stale (a holder on another host is taken at its word). */
export function runLockHolder(dir: string): LockInfo | null {
  const holder = readLock(join(dir, LOCK_FILE));
  return holder === null || isStale(holder) ? null : holder;
}

/**
 * Visits every entry under `dir`, depth first. `visit` gets the entry's path, name, parent directory
 * and a lazy, cached `isDir` (false when the entry cannot be stat'ed, e.g. it vanished), and returns
 * whether to descend into it (only directories are descended into). Unreadable directories are
 * skipped. Shared by the sweep below and the kill test's temporary-file check.
 */
export function walkDir(
  dir: string,
  visit: (path: string, name: string, parent: string, isDir: () => boolean) => boolean,
): void {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const n of names) {
    const p = join(dir, n);
    let dirFlag: boolean | undefined;
    // Stat only when asked: the callers decide some entries by name alone.
    const isDir = (): boolean => {
      if (dirFlag === undefined) {
        try {
          dirFlag = statSync(p).isDirectory();
        } catch {
          dirFlag = false;
        }
      }
      return dirFlag;
    };
    if (visit(p, n, dir, isDir) && isDir()) walkDir(p, visit);
  }
}

/**
 * Removes what a killed writer left half-done under `dir` (see the header). Returns the paths
 * removed. Only call it while holding the directory's lock.
 */
export function sweepKilledRun(dir: string): string[] {
  const removed: string[] = [];
  const rm = (p: string) => {
    rmSync(p, { recursive: true, force: true });
    removed.push(p);
  };
  walkDir(dir, (p, n, d, isDir) => {
    if (n === LOCK_FILE && d !== dir) {
      // The lock of a nested writer (e.g. <run>/dynamics, trained inside the run) that was killed.
      if (isStaleLock(p)) rm(p);
      return false;
    }
    const m = TEMP_FILE_NAME.exec(n);
    if (m) {
      if (Number(m[1]) !== process.pid && !alive(Number(m[1]))) rm(p);
      return false;
    }
    if (!isDir()) return false;
    if (n === 'checkpoint.new') {
      rm(p);
      return false;
    }
    if (existsSync(join(p, 'manifest.json'))) {
      try {
        const m = JSON.parse(readFileSync(join(p, 'manifest.json'), 'utf8')) as { complete?: boolean };
        if (m.complete === false && /^round-\d+$/.test(n)) {
          rm(p); // a rollout round cut off mid-write: rewritten when the round is inserted again
          return false;
        }
      } catch {
        /* a damaged manifest is reported by its reader */
      }
    }
    return true;
  });
  const cps = join(dir, 'checkpoints');
  if (existsSync(cps)) {
    let latest: string | null = null;
    try {
      latest = (JSON.parse(readFileSync(join(cps, 'latest.json'), 'utf8')) as { checkpoint: string }).checkpoint;
    } catch {
      latest = null;
    }
    for (const n of readdirSync(cps)) if (n.startsWith('epoch-') && n !== latest) rm(join(cps, n));
  }
  return removed;
}

/**
 * Where a run is, one `phase: <name> [detail]` line on stderr, when the environment variable
 * MOPO_TRACE_PHASES is set (off otherwise): the kill test (scripts/killTest.ts) reads these lines
 * to aim its kills and to record which phase each one interrupted.
 */
export function tracePhase(phase: string): void {
  if (process.env.MOPO_TRACE_PHASES) process.stderr.write(`phase: ${phase}\n`);
}
