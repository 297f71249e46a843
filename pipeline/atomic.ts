// Every file the project writes is written atomically: to a temporary name beside the target, then
// renamed over it. A killed run leaves the old file or the new one, never half of one.
import { promises as fsp, existsSync, unlinkSync, mkdirSync, openSync, writeSync, fsyncSync, closeSync, renameSync, rmSync, readFileSync } from 'node:fs';
import { dirname, basename, join } from 'node:path';

/** The names tempPathFor makes (`.name.tmp-<pid>-<rand>`); group 1 is the writer's pid. */
export const TEMP_FILE_NAME = /^\..+\.tmp-(\d+)-[a-z0-9]+$/;

/** A temporary path beside `target`, unique to this process and call. */
export function tempPathFor(target: string): string {
  const rand = Math.floor(Math.random() * 0x7fffffff).toString(36);
  return join(dirname(target), `.${basename(target)}.tmp-${process.pid}-${rand}`);
}

/** Writes `data` to `target` atomically (temp file, fsync, rename). */
export async function writeFileAtomic(target: string, data: Uint8Array | string): Promise<void> {
  await fsp.mkdir(dirname(target), { recursive: true });
  const tmp = tempPathFor(target);
  try {
    const fh = await fsp.open(tmp, 'w');
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fsp.rename(tmp, target);
  } catch (e) {
    await fsp.rm(tmp, { force: true });
    throw e;
  }
}

/**
 * A temp file that becomes `target` on commit() and disappears on abort(). For writers that stream
 * many chunks. Also removed if the process exits before commit (best effort, synchronous).
 */
export class AtomicFile {
  readonly target: string;
  readonly tempPath: string;
  private done = false;
  private readonly onExit = () => {
    if (!this.done && existsSync(this.tempPath)) {
      try {
        unlinkSync(this.tempPath);
      } catch {
        /* the process is exiting; nothing more to do */
      }
    }
  };

  constructor(target: string) {
    this.target = target;
    this.tempPath = tempPathFor(target);
    process.once('exit', this.onExit);
  }

  async commit(): Promise<void> {
    if (this.done) return;
    await fsp.rename(this.tempPath, this.target);
    this.done = true;
    process.removeListener('exit', this.onExit);
  }

  async abort(): Promise<void> {
    if (this.done) return;
    this.done = true;
    process.removeListener('exit', this.onExit);
    await fsp.rm(this.tempPath, { force: true });
  }
}

/**
 * writeFileAtomic, synchronously: for writers inside a synchronous stream, where blocking the
 * producer while the bytes go to disk is what bounds memory (an async write lets the reader run
 * ahead and queue shards without limit).
 */
export function writeFileAtomicSync(target: string, data: Uint8Array | string): void {
  mkdirSync(dirname(target), { recursive: true });
  const tmp = tempPathFor(target);
  try {
    const fd = openSync(tmp, 'w');
    try {
      const bytes = typeof data === 'string' ? Buffer.from(data) : data;
      let off = 0;
      while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, target);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}

/** A JSON file a run may or may not have written yet (written atomically, so whole or absent); null when absent. */
export function readJsonIfExists<T>(path: string): T | null {
  return existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')) as T) : null;
}

/**
 * The complete lines of a JSON Lines log that runs append to (metrics.jsonl): a kill mid-append
 * leaves a partial last line, which is dropped with anything after it. [] when there is no file.
 */
export function readJsonLines<T>(path: string): T[] {
  if (!existsSync(path)) return [];
  const out: T[] = [];
  for (const l of readFileSync(path, 'utf8').split('\n')) {
    if (l.trim() === '') continue;
    try {
      out.push(JSON.parse(l) as T);
    } catch {
      break;
    }
  }
  return out;
}
