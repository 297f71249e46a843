#!/usr/bin/env node
// Fuzzing the readers and the CLI: mutates valid inputs (Parquet files in four layouts, Arrow shard
// sets with their manifest, pipeline files) and checks that every case ends in a clear error (a
// UserError: one paragraph, no stack trace; exit code 2 through the CLI) or a correct result, never
// a crash, a stack trace, a hang or unbounded memory.
//
//   node dist/scripts/fuzz.js --cases 2000 --seed 1 [--out runs/fuzz]
//
// Every case runs in a child process with a time limit and a memory cap (V8 heap
// --max-old-space-size=256, and the child's resident set polled against --rss-limit-mb, which also
// catches typed-array and wasm memory the heap cap does not). Most cases run in batches in a worker
// child ("in-process": inspectDataset, readTransitions, readShards, loadPipelineFile, runPipeline
// called directly); a fraction (--cli-fraction) runs the real CLI, one child per case
// (`mopo inspect <input> --json`, `mopo run <pipeline> --out <dir>`). When a worker dies or hangs,
// its current case is a failure and the rest of its batch continues in a new worker.
//
// Outcomes: ok (exit 0 / no error, and the result passes consistency checks), clear (UserError /
// exit 2 with one paragraph on stderr and no stack-trace lines), failure (anything else). The report
// (<out>/report.json) counts outcomes per target × mutator, lists the classes of clear errors, and
// every failure with its input saved under <out>/failures/ for reproduction
// (`node dist/scripts/fuzz.js --replay <out>/failures/case-…` reruns one in this process, with the
// stack). The last line of output is `fuzz: N cases, ok A, clear errors B, failures C`; the exit
// code is 1 when there were failures.
import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { lastValueFrom, of, toArray } from 'rxjs';
import {
  Bool,
  Field,
  Float32,
  FixedSizeList,
  Float64,
  Int32,
  Int64,
  List,
  RecordBatch,
  RecordBatchFileWriter,
  Schema,
  Struct,
  Table,
  makeData,
  tableFromIPC,
  tableToIPC,
  type Data,
  type DataType,
} from 'apache-arrow';
import { Rng } from '../pipeline/random.js';
import { isMain } from '../pipeline/isMain.js';
import { isUserError } from '../pipeline/errors.js';
import { CT, TStruct, decodeThriftStruct, encodeThriftStruct, parquetWasm, type TValue } from '../pipeline/parquet.js';
import { TransitionBatch, type TransitionDims } from '../schemas/transition.js';
import { writeTransitionsFile } from '../operators/writeTransitions.js';
import { readTransitions, type ReadOptions } from '../operators/readTransitions.js';
import { readManifest, readShards, writeShards, MANIFEST_FILE } from '../operators/shards.js';
import { openTransitions } from '../operators/source.js';
import { inspectDataset } from '../pipeline/commands/inspect.js';
import { loadPipelineFile } from '../pipeline/pipelineFile.js';
import { runPipeline } from '../pipeline/runPipeline.js';
import { sha256Hex } from '../pipeline/hash.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const SELF = fileURLToPath(import.meta.url);
const CLI = resolve(HERE, '../pipeline/cli.js');

// ---------------------------------------------------------------------------------------------
// Cases and outcomes

export type Target = 'parquet' | 'shards' | 'pipeline';
export type Outcome = 'ok' | 'clear' | 'failure';

export interface CaseSpec {
  id: number;
  target: Target;
  mutator: string;
  mode: 'inproc' | 'cli';
  /** The mutated input: a Parquet file, a shard directory or a pipeline file. */
  input: string;
  /** Run directory for pipeline cases. */
  runOut: string;
  /** Read options for the in-process Parquet/shard read (exercises ranges and batch sizes). */
  read?: { batchSize?: number; rows?: { start: number; end: number } };
  /** Rows a successful read must give: the seed's, for mutations that leave the data as it was. */
  expectRows?: number;
  /** `--set` overrides for pipeline cases. */
  sets?: string[];
  /** User read options (layout, column mapping, dims) for Parquet cases. */
  options?: FuzzReadOptions;
  /** What the mutator did, for the report. */
  note?: string;
}

export interface CaseResult {
  id: number;
  outcome: Outcome;
  /** The error message (clear), or what went wrong (failure), or a short summary (ok). */
  detail: string;
  ms: number;
  peakRssMb?: number;
}

const STACK_LINE = /^\s+at .+:\d+:\d+\)?\s*$/m;

/** Why a user-facing message is not a clear error, or undefined when it is one. */
export function unclearReason(msg: string): string | undefined {
  const t = msg.trim();
  if (!t) return 'empty message';
  if (STACK_LINE.test(msg)) return 'stack-trace lines in the message';
  if (/\n[ \t]*\n/.test(t)) return 'more than one paragraph';
  if (t.length > 6000) return `message of ${t.length} characters`;
  if (t.includes('[object Object]')) return 'message contains [object Object]';
  return undefined;
}

function errorDetail(e: unknown): string {
  if (e instanceof Error) return `${e.name}: ${e.message}\n${(e.stack ?? '').split('\n').slice(1, 12).join('\n')}`;
  return `non-Error thrown: ${String(e)}`;
}

/** Classifies a thrown value: a one-paragraph UserError is a clear error, anything else a failure. */
export function classifyError(e: unknown): { outcome: Outcome; detail: string } {
  if (isUserError(e)) {
    const why = unclearReason(e.message);
    return why ? { outcome: 'failure', detail: `unclear UserError (${why}): ${e.message.slice(0, 2000)}` } : { outcome: 'clear', detail: e.message };
  }
  return { outcome: 'failure', detail: errorDetail(e) };
}

class Inconsistent extends Error {}
function check(cond: unknown, what: string): asserts cond {
  if (!cond) throw new Inconsistent(`inconsistent result: ${what}`);
}

function checkBatches(batches: TransitionBatch[], dims: { obsDim: number; actDim: number } | undefined, what: string): number {
  let rows = 0;
  for (const b of batches) {
    check(b.length > 0, `${what}: an empty batch was emitted`);
    if (dims) check(b.obsDim === dims.obsDim && b.actDim === dims.actDim, `${what}: batch dims ${b.obsDim}/${b.actDim} differ from ${dims.obsDim}/${dims.actDim}`);
    check(b.observation.length === b.length * b.obsDim && b.nextObservation.length === b.length * b.obsDim && b.action.length === b.length * b.actDim, `${what}: column lengths`);
    for (let i = 0; i < b.length; i++) check(b.terminal[i]! <= 1 && b.timeout[i]! <= 1, `${what}: flags not 0/1`);
    rows += b.length;
  }
  return rows;
}

const isCount = (x: unknown) => typeof x === 'number' && Number.isInteger(x) && x >= 0;

/** Runs one case in this process: reads / validates / runs, then checks the result's consistency. */
export async function runCaseInProcess(spec: Pick<CaseSpec, 'target' | 'input' | 'runOut' | 'read' | 'options' | 'expectRows' | 'sets'>): Promise<{ outcome: Outcome; detail: string }> {
  try {
    if (spec.target === 'parquet') {
      const user = (spec.options ?? {}) as ReadOptions;
      const report = await inspectDataset(spec.input, { quiet: true, read: user });
      check(isCount(report.rows) && isCount(report.episodes), `inspect rows ${report.rows}, episodes ${report.episodes}`);
      if (spec.expectRows !== undefined) check(report.rows === spec.expectRows, `${report.rows} rows read where the unchanged data has ${spec.expectRows}`);
      if (report.rows > 0) check(Number.isInteger(report.obsDim) && report.obsDim > 0 && Number.isInteger(report.actDim) && report.actDim > 0, `inspect dims ${report.obsDim}/${report.actDim}`);
      // the same read with the case's range and batch size
      const r = spec.read?.rows;
      const opts: ReadOptions = { ...user, allowNonFinite: true, ...(spec.read?.batchSize ? { batchSize: spec.read.batchSize } : {}), ...(r ? { rows: r } : {}) };
      const batches = await lastValueFrom(readTransitions(spec.input, opts).pipe(toArray()));
      const n = checkBatches(batches, report.rows > 0 ? report : undefined, 'readTransitions');
      const want = r ? Math.max(0, Math.min(r.end, report.rows) - r.start) : report.rows;
      check(n === want, `readTransitions gave ${n} rows, inspect counted ${report.rows}${r ? ` (range ${r.start}–${r.end}: expected ${want})` : ''}`);
      if (spec.read?.batchSize) check(batches.every((b) => b.length <= spec.read!.batchSize!), 'a batch larger than batchSize');
      // the strict read (the default): non-finite values inspect counted must be refused
      const nonFinite = Object.values(report.nonFinite).reduce((s, x) => s + x, 0);
      let refused = '';
      try {
        await lastValueFrom(readTransitions(spec.input, { ...opts, allowNonFinite: false }).pipe(toArray()));
      } catch (e) {
        if (!(isUserError(e) && /non-finite/.test(e.message))) throw e;
        refused = ', the strict read refuses its non-finite values';
      }
      if (!r) check(nonFinite === 0 || refused, `inspect counted ${nonFinite} non-finite values but the strict read accepted them`);
      return { outcome: 'ok', detail: `${report.layout}: ${report.rows} rows, obs ${report.obsDim}, act ${report.actDim}${refused}` };
    }
    if (spec.target === 'shards') {
      const report = await inspectDataset(spec.input, { quiet: true });
      check(isCount(report.rows), `inspect rows ${report.rows}`);
      const manifest = await readManifest(spec.input);
      check(manifest.rows === report.rows, `manifest says ${manifest.rows} rows, the shards hold ${report.rows}`);
      const r = spec.read?.rows;
      const batches = await lastValueFrom(openTransitions(spec.input, r ? { rows: r } : {}).pipe(toArray()));
      const n = checkBatches(batches, report.rows > 0 ? report : undefined, 'readShards');
      const want = r ? Math.max(0, Math.min(r.end, report.rows) - r.start) : report.rows;
      check(n === want, `openTransitions gave ${n} rows, expected ${want}`);
      return { outcome: 'ok', detail: `shards: ${report.rows} rows, obs ${report.obsDim}, act ${report.actDim}` };
    }
    const parsed = loadPipelineFile(spec.input, spec.sets ?? []);
    check(!('polluted' in {}) && !('x' in {}), 'a --set override reached Object.prototype');
    if (parsed.dynamics || parsed.rollout || parsed.sac || parsed.evaluate) {
      // a valid MOPO pipeline would train for minutes: validated, not run
      return { outcome: 'ok', detail: 'valid MOPO pipeline (validated only)' };
    }
    rmSync(spec.runOut, { recursive: true, force: true });
    const result = await runPipeline(spec.runOut, parsed, { resume: false, quiet: true, backend: 'cpu', log: () => {} });
    if (!result.preprocess) return { outcome: 'ok', detail: 'no stages' };
    const m = result.preprocess.manifest;
    check(m.complete, 'preprocess manifest not complete');
    const batches = await lastValueFrom(readShards(join(spec.runOut, 'stages', 'preprocess')).pipe(toArray()));
    const n = checkBatches(batches, undefined, 'preprocess shards');
    check(n === m.rows, `preprocess shards hold ${n} rows, manifest says ${m.rows}`);
    return { outcome: 'ok', detail: `pipeline: ${parsed.preprocess.map((s) => s.stage).join(' → ')}: ${n} rows` };
  } catch (e) {
    if (e instanceof Inconsistent) return { outcome: 'failure', detail: e.message };
    return classifyError(e);
  }
}

/** Classifies a finished CLI child. */
export function classifyCli(spec: Pick<CaseSpec, 'target' | 'runOut' | 'expectRows'>, r: ChildResult): { outcome: Outcome; detail: string } {
  if (r.killedFor) return { outcome: 'failure', detail: `${r.killedFor === 'timeout' ? 'hang: killed after the time limit' : `memory: resident set reached ${r.peakRssMb} MB`}; stderr: ${tail(r.stderr)}` };
  if (r.signal) return { outcome: 'failure', detail: `killed by ${r.signal}; stderr: ${tail(r.stderr)}` };
  if (r.code === 0) {
    if (spec.target === 'pipeline') {
      const m = join(spec.runOut, 'stages', 'preprocess', MANIFEST_FILE);
      if (existsSync(m)) {
        try {
          const j = JSON.parse(readFileSync(m, 'utf8')) as { complete?: unknown };
          if (j.complete !== true) return { outcome: 'failure', detail: 'exit 0 but the preprocess manifest is incomplete' };
        } catch (e) {
          return { outcome: 'failure', detail: `exit 0 but the preprocess manifest does not parse: ${String(e)}` };
        }
      }
      return { outcome: 'ok', detail: 'exit 0' };
    }
    try {
      const j = JSON.parse(r.stdout) as { rows?: unknown };
      if (!isCount(j.rows)) return { outcome: 'failure', detail: `exit 0 but the JSON report has rows ${JSON.stringify(j.rows)}` };
      if (spec.expectRows !== undefined && j.rows !== spec.expectRows) return { outcome: 'failure', detail: `exit 0 with ${String(j.rows)} rows where the unchanged data has ${spec.expectRows}` };
      return { outcome: 'ok', detail: `exit 0, ${String(j.rows)} rows` };
    } catch {
      return { outcome: 'failure', detail: `exit 0 but stdout is not one JSON object: ${tail(r.stdout)}` };
    }
  }
  if (r.code === 2) {
    const msg = r.stderr.trim();
    const why = unclearReason(msg) ?? (msg.startsWith('mopo: ') ? undefined : 'stderr does not start with "mopo: "');
    return why ? { outcome: 'failure', detail: `exit 2 but not a clear error (${why}): ${tail(r.stderr)}` } : { outcome: 'clear', detail: msg.replace(/^mopo: /, '') };
  }
  return { outcome: 'failure', detail: `exit code ${r.code}; stderr: ${tail(r.stderr)}` };
}

const tail = (s: string, n = 1500) => (s.length > n ? `…${s.slice(-n)}` : s).trim();

// ---------------------------------------------------------------------------------------------
// Child processes with a time limit and a memory cap

export interface ChildResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  killedFor?: 'timeout' | 'memory';
  peakRssMb: number;
}

function rssMb(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Math.round(Number(m[1]) / 1024) : 0;
  } catch {
    return 0;
  }
}

export interface ChildOptions {
  timeoutMs: number;
  rssLimitMb: number;
  heapMb: number;
  /** Called for each stdout line; returning 'reset' restarts the time limit (a new case began). */
  onLine?: (line: string, rssMb: number) => 'reset' | void;
}

export function runChild(args: string[], o: ChildOptions): Promise<ChildResult> {
  return new Promise((resolvePromise) => {
    const child = spawn(process.execPath, [`--max-old-space-size=${o.heapMb}`, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, MOPO_BACKEND: 'cpu' } });
    let stdout = '';
    let stderr = '';
    let pending = '';
    let deadline = Date.now() + o.timeoutMs;
    let peak = 0;
    let killedFor: ChildResult['killedFor'];
    let current = 0;
    const poll = setInterval(() => {
      if (child.pid === undefined || child.exitCode !== null) return;
      current = rssMb(child.pid);
      peak = Math.max(peak, current);
      if (current > o.rssLimitMb) killedFor ??= 'memory';
      else if (Date.now() > deadline) killedFor ??= 'timeout';
      if (killedFor) child.kill('SIGKILL');
    }, 50);
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      if (stdout.length < 1_000_000) stdout += chunk;
      if (!o.onLine) return;
      pending += chunk;
      let nl: number;
      while ((nl = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        if (o.onLine(line, current) === 'reset') deadline = Date.now() + o.timeoutMs;
      }
    });
    child.stderr.on('data', (chunk: string) => {
      if (stderr.length < 200_000) stderr += chunk;
    });
    child.on('close', (code, signal) => {
      clearInterval(poll);
      resolvePromise({ code, signal, stdout, stderr, ...(killedFor ? { killedFor } : {}), peakRssMb: peak });
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Seeds: small valid inputs made with the project's own code (and arrow-rs for foreign layouts)

export const PARQUET_SEEDS = ['flat', 'fsl', 'list', 'traj', 'traj-flat', 'nulls'] as const;
export type ParquetSeed = (typeof PARQUET_SEEDS)[number];

export interface Seeds {
  dir: string;
  parquet: Record<ParquetSeed, string>;
  /** Transitions each Parquet seed yields (default read options). */
  rows: Record<ParquetSeed, number>;
  shards: { a: string; b: string };
  pipelines: Record<string, unknown>;
}

function episodeFlags(n: number, every: number): { terminal: Uint8Array; timeout: Uint8Array; episode: Int32Array; step: Int32Array } {
  const terminal = new Uint8Array(n);
  const timeout = new Uint8Array(n);
  const episode = new Int32Array(n);
  const step = new Int32Array(n);
  let ep = 0;
  let t = 0;
  for (let i = 0; i < n; i++) {
    episode[i] = ep;
    step[i] = t++;
    if (t === every || i === n - 1) {
      if (ep % 2 === 0) terminal[i] = 1;
      else timeout[i] = 1;
      ep++;
      t = 0;
    }
  }
  return { terminal, timeout, episode, step };
}

function seedBatch(dims: TransitionDims, n: number, seed: number, optional = true): TransitionBatch {
  const rng = new Rng(seed, 'fuzz-seed');
  const b = TransitionBatch.allocate(dims, n, optional ? ['episode', 'step'] : []);
  rng.fillNormal(b.observation);
  rng.fillNormal(b.nextObservation);
  rng.fillUniform(b.action, -1, 1);
  rng.fillNormal(b.reward);
  const f = episodeFlags(n, 9);
  b.terminal.set(f.terminal);
  b.timeout.set(f.timeout);
  if (optional) {
    b.episode!.set(f.episode);
    b.step!.set(f.step);
  }
  return b;
}

const f32 = (v: ArrayLike<number>) => makeData({ type: new Float32(), length: v.length, data: Float32Array.from(v) });
const f64 = (v: ArrayLike<number>) => makeData({ type: new Float64(), length: v.length, data: Float64Array.from(v) });
const i64 = (v: ArrayLike<number>) => makeData({ type: new Int64(), length: v.length, data: BigInt64Array.from(Array.from(v), (x) => BigInt(x)) });
function bools(v: ArrayLike<number>): Data {
  const bits = new Uint8Array((v.length + 7) >> 3);
  for (let i = 0; i < v.length; i++) if (v[i]) bits[i >> 3]! |= 1 << (i & 7);
  return makeData({ type: new Bool(), length: v.length, data: bits });
}
function withNulls(d: Data, nullRows: number[]): Data {
  const bits = new Uint8Array((d.length + 7) >> 3).fill(0xff);
  for (const i of nullRows) bits[i >> 3]! &= ~(1 << (i & 7));
  return d.clone(d.type, d.offset, d.length, nullRows.length, [d.valueOffsets, d.values, bits, d.typeIds] as never, d.children) as Data;
}
function fslOf(child: Data, dim: number): Data {
  return makeData({ type: new FixedSizeList(dim, new Field('item', child.type, true)), length: child.length / dim, nullCount: 0, child });
}
function listOf(child: Data, lengths: ArrayLike<number>): Data {
  const off = new Int32Array(lengths.length + 1);
  for (let i = 0; i < lengths.length; i++) off[i + 1] = off[i]! + lengths[i]!;
  return makeData({ type: new List(new Field('item', child.type, true)), length: lengths.length, nullCount: 0, valueOffsets: off, child } as never) as Data;
}

function writeArrowRs(path: string, cols: Array<[string, Data]>, props: 'dictionary' | 'gzip'): void {
  const pw = parquetWasm();
  const fields = cols.map(([n, d]) => new Field(n, d.type as DataType, true));
  const schema = new Schema(fields);
  const rb = new RecordBatch(schema, makeData({ type: new Struct(fields), length: cols[0]![1].length, nullCount: 0, children: cols.map((c) => c[1]) }));
  const b = new pw.WriterPropertiesBuilder();
  const wp = props === 'dictionary' ? b.setDictionaryEnabled(true).setMaxRowGroupSize(30).build() : b.setCompression(pw.Compression.GZIP).setMaxRowGroupSize(4).build();
  writeFileSync(path, pw.writeParquet(pw.Table.fromIPCStream(tableToIPC(new Table(rb), 'stream')), wp));
}

/** Writes the seed inputs into `dir` (a few KB each). */
export async function makeSeeds(dir: string): Promise<Seeds> {
  mkdirSync(dir, { recursive: true });
  const p = (n: string) => join(dir, n);
  const pend: TransitionDims = { obsDim: 3, actDim: 1, env: 'pendulum' };
  // our writer, flat layout (one float column per dimension), 3 row groups, snappy
  await writeTransitionsFile(p('flat.parquet'), of(seedBatch(pend, 60, 1)), { rowGroupSize: 24 });
  // our writer, fixed-size lists, zstd
  await writeTransitionsFile(p('fsl.parquet'), of(seedBatch({ obsDim: 4, actDim: 2 }, 64, 2, false)), { rowGroupSize: 32, vectorLayout: 'fixed-size-list', compression: 'zstd' });
  // arrow-rs writer, D4RL names, list<float> vectors, dictionary encoding, no next_observations
  {
    const rng = new Rng(3, 'fuzz-seed');
    const n = 60;
    const f = episodeFlags(n, 12);
    const obs = rng.fillNormal(new Float32Array(n * 4));
    const act = rng.fillUniform(new Float32Array(n * 2), -1, 1);
    writeArrowRs(p('list.parquet'), [
      ['observations', listOf(f32(obs), new Array(n).fill(4))],
      ['actions', listOf(f32(act), new Array(n).fill(2))],
      ['rewards', f64(rng.fillNormal(new Float32Array(n)))],
      ['terminals', bools(f.terminal)],
      ['timeouts', bools(f.timeout)],
    ], 'dictionary');
  }
  // arrow-rs writer, trajectory layout (one episode a row: list<list<float>>), gzip
  {
    const rng = new Rng(4, 'fuzz-seed');
    const lens = [8, 5, 9, 3, 7, 6];
    const T = lens.reduce((s, x) => s + x, 0);
    const obsRows = lens.map((x) => x + 1);
    const nObs = obsRows.reduce((s, x) => s + x, 0);
    const term = lens.flatMap((x, e) => Array.from({ length: x }, (_, t) => (e % 2 === 0 && t === x - 1 ? 1 : 0)));
    writeArrowRs(p('traj.parquet'), [
      ['observations', listOf(listOf(f32(rng.fillNormal(new Float32Array(nObs * 3))), new Array(nObs).fill(3)), obsRows)],
      ['actions', listOf(listOf(f32(rng.fillUniform(new Float32Array(T), -1, 1)), new Array(T).fill(1)), lens)],
      ['rewards', listOf(f32(rng.fillNormal(new Float32Array(T))), lens)],
      ['terminals', listOf(bools(term), lens)],
      ['episode_id', i64(lens.map((_, e) => 100 + e))],
    ], 'gzip');
  }
  // arrow-rs writer, trajectory layout with flattened vectors (list<float>: the size is inferred)
  {
    const rng = new Rng(7, 'fuzz-seed');
    const lens = [6, 4, 7];
    const T = lens.reduce((s, x) => s + x, 0);
    writeArrowRs(p('traj-flat.parquet'), [
      ['observations', listOf(f32(rng.fillNormal(new Float32Array((T + lens.length) * 3))), lens.map((x) => (x + 1) * 3))],
      ['actions', listOf(f32(rng.fillUniform(new Float32Array(T * 2), -1, 1)), lens.map((x) => x * 2))],
      ['rewards', listOf(f64(rng.fillNormal(new Float32Array(T))), lens)],
      ['timeouts', listOf(bools(lens.flatMap((x) => Array.from({ length: x }, (_, t) => (t === x - 1 ? 1 : 0)))), lens)],
    ], 'gzip');
  }
  // arrow-rs writer, nulls: a null observation row and reward (NaN), null flags (0), fixed-size-list actions
  {
    const rng = new Rng(8, 'fuzz-seed');
    const n = 40;
    const f = episodeFlags(n, 10);
    writeArrowRs(p('nulls.parquet'), [
      ['obs', withNulls(listOf(f32(rng.fillNormal(new Float32Array(n * 2))), new Array(n).fill(2)), [5])],
      ['action', fslOf(f32(rng.fillUniform(new Float32Array(n * 2), -1, 1)), 2)],
      ['reward', withNulls(f64(rng.fillNormal(new Float32Array(n))), [7])],
      ['next_obs', listOf(f64(rng.fillNormal(new Float32Array(n * 2))), new Array(n).fill(2))],
      ['done', withNulls(bools(f.terminal), [3])],
      ['timeouts', makeData({ type: new Int32(), length: n, data: Int32Array.from(f.timeout) })],
    ], 'dictionary');
  }
  // Arrow shard sets: pendulum dims with episode/step (3 shards), and 4/2 dims without (2 shards)
  const shardsA = p('shards');
  const shardsB = p('shards-b');
  const a = seedBatch(pend, 60, 5);
  await lastValueFrom(of(a.slice(0, 20), a.slice(20, 40), a.slice(40)).pipe(writeShards({ dir: shardsA, stage: 'fuzz-seed', config: { seed: 5 }, rowsPerShard: 20 })));
  const b = seedBatch({ obsDim: 4, actDim: 2 }, 40, 6, false);
  await lastValueFrom(of(b.slice(0, 20), b.slice(20)).pipe(writeShards({ dir: shardsB, stage: 'fuzz-seed-b', rowsPerShard: 20 })));
  // Pipelines (preprocessing only: each runs in well under a second). Datasets are relative to the
  // pipeline file, which lives two levels below the out directory (work/case-N/, failures/case-N/).
  const pipelines: Record<string, unknown> = {
    basic: { name: 'fuzz-basic', env: 'pendulum', seed: 0, source: { dataset: '../../seeds/flat.parquet' }, stages: [{ stage: 'dropNonFinite' }, { stage: 'tee', name: 'clean', rowsPerShard: 16 }] },
    full: {
      name: 'fuzz-full',
      env: 'pendulum',
      seed: 1,
      source: { dataset: '../../seeds/flat.parquet', allowNonFinite: false },
      stages: [
        { stage: 'clipActions', low: -0.5, high: 0.5 },
        { stage: 'scaleReward', scale: 2, shift: 0.5 },
        { stage: 'filterEpisodes', minLength: 2, minReturnQuantile: 0.25 },
        { stage: 'selectColumns', observationDims: [0, 2], keepOptional: ['episode'] },
        { stage: 'normalize', observations: true, actions: true, reward: true },
        { stage: 'tee', name: 'out', rowsPerShard: 16 },
      ],
    },
    shards: { env: 'pendulum', seed: 2, source: { dataset: '../../seeds/shards' }, stages: [{ stage: 'dropNonFinite', columns: ['observation', 'reward'] }, { stage: 'clipActions' }, { stage: 'tee' }] },
    list: { env: 'hopper', source: { dataset: '../../seeds/list.parquet', columns: { observation: 'observations' } }, stages: [{ stage: 'scaleReward', scale: -1 }] },
  };
  const parquet = Object.fromEntries(PARQUET_SEEDS.map((k) => [k, p(`${k}.parquet`)])) as Record<ParquetSeed, string>;
  const rows = {} as Record<ParquetSeed, number>;
  for (const k of PARQUET_SEEDS) rows[k] = (await inspectDataset(parquet[k], { quiet: true })).rows;
  return { dir, parquet, rows, shards: { a: shardsA, b: shardsB }, pipelines };
}

// ---------------------------------------------------------------------------------------------
// Mutators

const pick = <T>(r: Rng, xs: readonly T[]): T => xs[r.int(xs.length)]!;
const randomBytes = (r: Rng, n: number) => {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = r.int(256);
  return out;
};
const concat = (...parts: Uint8Array[]) => {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
};

function bitflips(r: Rng, b: Uint8Array, lo = 0, hi = b.length): Uint8Array {
  const out = b.slice();
  if (hi <= lo) return out;
  const k = 1 + r.int(64);
  for (let i = 0; i < k; i++) out[lo + r.int(hi - lo)]! ^= 1 << r.int(8);
  return out;
}
function overwriteRun(r: Rng, b: Uint8Array, lo = 0, hi = b.length): Uint8Array {
  const out = b.slice();
  if (hi <= lo) return out;
  const at = lo + r.int(hi - lo);
  const len = Math.min(hi - at, 1 + r.int(r.next() < 0.7 ? 16 : 256));
  const fill = pick(r, ['random', 'zero', 'ff', '7f'] as const);
  for (let i = 0; i < len; i++) out[at + i] = fill === 'random' ? r.int(256) : fill === 'zero' ? 0 : fill === 'ff' ? 0xff : 0x7f;
  return out;
}
function truncate(r: Rng, b: Uint8Array): Uint8Array {
  const u = r.next();
  const n = u < 0.12 ? 0 : u < 0.3 ? Math.max(0, b.length - 1 - r.int(16)) : u < 0.4 ? r.int(16) : r.int(b.length);
  return b.slice(0, n);
}
function appendGarbage(r: Rng, b: Uint8Array): Uint8Array {
  const u = r.next();
  if (u < 0.2) return concat(b, b); // the file twice
  if (u < 0.3) return concat(b, new Uint8Array([0x50, 0x41, 0x52, 0x31])); // an extra "PAR1"
  return concat(b, randomBytes(r, 1 + r.int(r.next() < 0.5 ? 64 : 4096)));
}

const INT_VALUES = [0, 1, 2, 3, -1, -2, 7, 15, 16, 127, 128, 255, 256, 4096, 65535, 0x7fff, 0x7fffffff, -0x80000000, 1_000_000_000, 0xffffffff, 2 ** 40, 2 ** 53];
function interestingInt(r: Rng, v: number): number {
  const u = r.next();
  if (u < 0.5) return pick(r, INT_VALUES);
  if (u < 0.7) return v + pick(r, [-1, 1, -2, 2, -8, 8, 100]);
  if (u < 0.8) return v * pick(r, [2, 10, 1000, -1]);
  return (r.nextUint32() | 0) >> r.int(31);
}
function interestingBig(r: Rng, v: bigint): bigint {
  const u = r.next();
  if (u < 0.5) return BigInt(pick(r, INT_VALUES));
  if (u < 0.6) return pick(r, [2n ** 62n, -(2n ** 63n), 2n ** 63n - 1n, 2n ** 53n + 1n]);
  if (u < 0.8) return v + BigInt(pick(r, [-1, 1, -4, 4, 64, -64, 1000]));
  return v * BigInt(pick(r, [2, 1000, -1, 0]));
}
const utf8 = new TextEncoder();
function interestingString(r: Rng, cur: string): Uint8Array {
  return utf8.encode(
    pick(r, [
      '',
      'x',
      cur + cur,
      cur.toUpperCase(),
      cur.slice(0, -1),
      'observation_0',
      'reward',
      'observations',
      'next_observation_0',
      'terminal',
      'episode',
      '1000000000',
      '-1',
      '0',
      'NaN',
      '3.5',
      'a'.repeat(5000),
      '\u0000\uffff',
      'é€😀',
    ]),
  );
}

/** Every mutable place in a Thrift tree. */
interface Slot {
  get(): TValue;
  set(v: TValue): void;
}
function slots(root: TStruct): { scalars: Slot[]; structs: TStruct[]; lists: Array<{ kind: 'list'; items: TValue[] }> } {
  const scalars: Slot[] = [];
  const structs: TStruct[] = [];
  const lists: Array<{ kind: 'list'; items: TValue[] }> = [];
  const visit = (v: TValue, slot: Slot) => {
    if (v instanceof TStruct) {
      structs.push(v);
      for (const f of v.fields) visit(f.value, { get: () => f.value, set: (x) => (f.value = x) });
    } else if (v instanceof Uint8Array || typeof v !== 'object') scalars.push(slot);
    else if (v.kind === 'list') {
      lists.push(v);
      v.items.forEach((x, i) => visit(x, { get: () => v.items[i]!, set: (y) => (v.items[i] = y) }));
    } else if (v.kind === 'map') v.entries.forEach((e) => visit(e[1], { get: () => e[1], set: (y) => (e[1] = y) }));
  };
  visit(root, { get: () => root, set: () => {} });
  return { scalars, structs, lists };
}

function mutateScalar(r: Rng, s: Slot): string {
  const v = s.get();
  if (typeof v === 'number') {
    const x = interestingInt(r, v);
    s.set(x);
    return `${v} → ${x}`;
  }
  if (typeof v === 'bigint') {
    const x = interestingBig(r, v);
    s.set(x);
    return `${v} → ${x}`;
  }
  if (v instanceof Uint8Array) {
    const x = interestingString(r, new TextDecoder().decode(v));
    s.set(x);
    return `string → ${JSON.stringify(new TextDecoder().decode(x.subarray(0, 40)))}`;
  }
  if (typeof v === 'boolean') {
    s.set(!v);
    return `bool → ${!v}`;
  }
  return 'no change';
}

function mutateThriftTree(r: Rng, root: TStruct, op: 'value' | 'structure'): string {
  const { scalars, structs, lists } = slots(root);
  if (op === 'value' && scalars.length) return `value ${mutateScalar(r, pick(r, scalars))}`;
  const u = r.next();
  if (u < 0.4 && structs.length) {
    const s = pick(r, structs);
    if (s.fields.length === 0) return 'no change';
    const f = pick(r, s.fields);
    s.delete(f.id);
    return `dropped field ${f.id}`;
  }
  const nonEmpty = lists.filter((l) => l.items.length > 0);
  if (!nonEmpty.length) return 'no change';
  const l = pick(r, nonEmpty);
  const i = r.int(l.items.length);
  const w = r.next();
  if (w < 0.4) {
    l.items.splice(i, 1);
    return `removed list item ${i}`;
  }
  if (w < 0.7) {
    l.items.splice(i, 0, l.items[i]!);
    return `duplicated list item ${i}`;
  }
  if (w < 0.85) {
    l.items.reverse();
    return 'reversed a list';
  }
  l.items.length = 0;
  return 'emptied a list';
}

function footerOf(b: Uint8Array): { start: number; len: number; meta: TStruct } {
  const len = new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(b.length - 8, true);
  const start = b.length - 8 - len;
  return { start, len, meta: decodeThriftStruct(b.subarray(start, b.length - 8)).value };
}
function withFooter(b: Uint8Array, start: number, meta: TStruct): Uint8Array {
  const body = encodeThriftStruct(meta);
  const tailBytes = new Uint8Array(8);
  new DataView(tailBytes.buffer).setUint32(0, body.length, true);
  tailBytes.set([0x50, 0x41, 0x52, 0x31], 4);
  return concat(b.subarray(0, start), body, tailBytes);
}

function setKv(meta: TStruct, key: string, value: string | null): void {
  const items = (meta.list(5) ?? []).filter((x) => !(x instanceof TStruct && x.str(1) === key));
  if (value !== null) items.push(new TStruct([{ id: 1, type: CT.BINARY, value: utf8.encode(key) }, { id: 2, type: CT.BINARY, value: utf8.encode(value) }]));
  meta.set(5, CT.LIST, { kind: 'list', elemType: CT.STRUCT, set: false, items });
}

/** Indices of the leaf elements in a footer's flat schema list (DFS order = column chunk order). */
function leafElements(els: TValue[]): number[] {
  const out: number[] = [];
  for (let i = 1; i < els.length; i++) if (!((els[i] as TStruct).int(5) ?? 0)) out.push(i);
  return out;
}

/** Sets every column chunk's path_in_schema from the (renamed) schema tree. */
function recomputePaths(meta: TStruct): void {
  const els = meta.list(2)!;
  const paths: string[][] = [];
  let i = 1;
  const walk = (prefix: string[]) => {
    const el = els[i++] as TStruct | undefined;
    if (!el) return;
    const path = [...prefix, el.str(4) ?? ''];
    const n = el.int(5) ?? 0;
    if (n === 0) paths.push(path);
    for (let k = 0; k < n && i < els.length; k++) walk(path);
  };
  const rootChildren = (els[0] as TStruct).int(5) ?? 0;
  for (let k = 0; k < rootChildren && i < els.length; k++) walk([]);
  for (const rg of (meta.list(4) ?? []) as TStruct[]) {
    (rg.list(1) ?? []).forEach((cc, leaf) => {
      const md = (cc as TStruct).struct(3);
      const path = paths[leaf];
      if (md && path) md.set(3, CT.LIST, { kind: 'list', elemType: CT.BINARY, set: false, items: path.map((x) => utf8.encode(x)) });
    });
  }
}

/** Read options a user could give (CLI flags, a pipeline's source), for the read-options mutator. */
export interface FuzzReadOptions {
  layout?: 'auto' | 'transitions' | 'trajectories';
  columns?: Record<string, string | string[]>;
  obsDim?: number;
  actDim?: number;
  env?: string;
}

function randomReadOptions(r: Rng): FuzzReadOptions {
  const o: FuzzReadOptions = {};
  const names = ['observation', 'observations', 'obs', 'observation_', 'observation_0', 'action', 'actions', 'action_', 'act', 'reward', 'rewards', 'terminal', 'terminals', 'done', 'timeout', 'timeouts', 'episode', 'episode_id', 'step', 'next_observation', 'next_obs', 'missing', ''];
  if (r.next() < 0.35) o.layout = pick(r, ['auto', 'transitions', 'trajectories'] as const);
  if (r.next() < 0.5) {
    o.columns = {};
    const roles = ['observation', 'action', 'reward', 'next_observation', 'terminal', 'timeout', 'episode', 'step'];
    for (let k = 1 + r.int(2); k > 0; k--) o.columns[pick(r, roles)] = r.next() < 0.2 ? [pick(r, names), pick(r, names)] : pick(r, names);
  }
  if (r.next() < 0.3) o.obsDim = pick(r, [1, 2, 3, 4, 6, 17, 1e9, 2 ** 31]);
  if (r.next() < 0.3) o.actDim = pick(r, [1, 2, 3, 1e9]);
  if (r.next() < 0.15) o.env = pick(r, ['pendulum', 'halfcheetah', 'nope']);
  return o;
}

/** The same options as `mopo inspect` flags. */
function readOptionFlags(o: FuzzReadOptions): string[] {
  const out: string[] = [];
  if (o.layout) out.push('--layout', o.layout);
  if (o.columns) out.push('--columns', ...Object.entries(o.columns).map(([k, v]) => `${k}=${Array.isArray(v) ? v.join(',') : v}`));
  if (o.obsDim !== undefined) out.push('--obs-dim', String(o.obsDim));
  if (o.actDim !== undefined) out.push('--act-dim', String(o.actDim));
  if (o.env) out.push('--env', o.env);
  return out;
}

/** Shifts footer offsets past `at` by delta after a splice at `at`; grows the hit chunk's size. */
function shiftOffsets(meta: TStruct, at: number, delta: number, chunk: TStruct): void {
  for (const rgv of meta.list(4) ?? []) {
    const rg = rgv as TStruct;
    for (const ccv of rg.list(1) ?? []) {
      const cc = ccv as TStruct;
      const md = cc.struct(3);
      if (!md) continue;
      for (const id of [9, 10, 11]) {
        const v = md.get(id);
        if (typeof v === 'bigint' && v > BigInt(at)) md.set(id, CT.I64, v + BigInt(delta));
      }
      const fo = cc.get(2);
      if (typeof fo === 'bigint' && fo > BigInt(at)) cc.set(2, CT.I64, fo + BigInt(delta));
      if (md === chunk) {
        const c = md.get(7);
        if (typeof c === 'bigint') md.set(7, CT.I64, c + BigInt(delta));
      }
    }
  }
}

export const PARQUET_MUTATORS = [
  'bitflip',
  'bitflip-footer',
  'overwrite-run',
  'truncate',
  'append',
  'footer-length',
  'magic',
  'footer-value',
  'footer-structure',
  'kv-metadata',
  'schema-type',
  'column-names',
  'row-counts',
  'read-options',
  'arrow-schema',
  'page-header',
  'chunk-bytes',
] as const;

export function mutateParquet(r: Rng, b: Uint8Array, m: (typeof PARQUET_MUTATORS)[number]): { bytes: Uint8Array; note: string } {
  const f = footerOf(b);
  switch (m) {
    case 'bitflip':
      return { bytes: bitflips(r, b), note: 'bit flips anywhere' };
    case 'bitflip-footer':
      return { bytes: bitflips(r, b, f.start, b.length), note: 'bit flips in the footer' };
    case 'overwrite-run':
      return { bytes: overwriteRun(r, b), note: 'a byte run overwritten' };
    case 'truncate': {
      const t = truncate(r, b);
      return { bytes: t, note: `truncated to ${t.length} of ${b.length} bytes` };
    }
    case 'append':
      return { bytes: appendGarbage(r, b), note: 'garbage appended' };
    case 'footer-length': {
      const out = b.slice();
      const v = pick(r, [0, 1, f.len - 1, f.len + 1, f.len * 2, b.length - 12, b.length - 8, b.length, 0x7fffffff, 0xffffffff, r.nextUint32()]);
      new DataView(out.buffer).setUint32(out.length - 8, v >>> 0, true);
      return { bytes: out, note: `footer length ${f.len} → ${v >>> 0}` };
    }
    case 'magic': {
      const out = b.slice();
      const which = pick(r, ['head', 'tail', 'both', 'PARE'] as const);
      if (which === 'head' || which === 'both') out[r.int(4)] ^= 1 << r.int(8);
      if (which === 'tail' || which === 'both') out[out.length - 1 - r.int(4)] ^= 1 << r.int(8);
      if (which === 'PARE') out[out.length - 1] = 0x45;
      return { bytes: out, note: `magic bytes (${which})` };
    }
    case 'footer-value':
    case 'footer-structure': {
      const note = mutateThriftTree(r, f.meta, m === 'footer-value' ? 'value' : 'structure');
      return { bytes: withFooter(b, f.start, f.meta), note: `footer ${note}` };
    }
    case 'schema-type': {
      const els = f.meta.list(2)!;
      const leaves = leafElements(els);
      if (!leaves.length) return { bytes: b, note: 'no leaves' };
      const li = r.int(leaves.length);
      const el = els[leaves[li]!] as TStruct;
      const name = el.str(4);
      const op = pick(r, ['physical', 'repetition', 'converted', 'logical', 'length'] as const);
      let note = '';
      if (op === 'physical') {
        const t = r.int(8);
        el.set(1, CT.I32, t);
        for (const rg of (f.meta.list(4) ?? []) as TStruct[]) ((rg.list(1) ?? [])[li] as TStruct | undefined)?.struct(3)?.set(1, CT.I32, t);
        note = `physical type → ${t}`;
      } else if (op === 'repetition') {
        const v = r.int(3);
        el.set(3, CT.I32, v);
        note = `repetition → ${v}`;
      } else if (op === 'converted') {
        const v = r.int(22);
        el.set(6, CT.I32, v);
        if (r.next() < 0.5) el.set(8, CT.I32, pick(r, [0, 1, 9, 38, 100])).set(7, CT.I32, pick(r, [0, 2, -1, 50]));
        note = `converted type → ${v}`;
      } else if (op === 'logical') {
        if (r.next() < 0.3) {
          el.delete(10);
          note = 'logical type removed';
        } else {
          const k = 1 + r.int(16);
          el.set(10, CT.STRUCT, new TStruct([{ id: k, type: CT.STRUCT, value: new TStruct() }]));
          note = `logical type → union member ${k} (empty)`;
        }
      } else {
        const v = pick(r, [0, 1, 2, 4, 8, 16, -1, 0x7fffffff]);
        el.set(2, CT.I32, v);
        note = `type length → ${v}`;
      }
      if (r.next() < 0.5) setKv(f.meta, 'ARROW:schema', null);
      return { bytes: withFooter(b, f.start, f.meta), note: `schema element ${name}: ${note}` };
    }
    case 'column-names': {
      const els = f.meta.list(2)!;
      if (els.length < 2) return { bytes: b, note: 'no columns' };
      const i = 1 + r.int(els.length - 1);
      const el = els[i] as TStruct;
      const old = el.str(4) ?? '';
      const others = els.slice(1).map((e) => (e as TStruct).str(4) ?? '');
      const name = r.next() < 0.35 ? pick(r, others) : pick(r, ['obs', 'observations', 'state', 'act', 'actions', 'rew', 'rewards', 'done', 'dones', 'terminals', 'timeouts', 'truncated', 'episode_id', 'traj_id', 't', 'step', 'next_obs', 'next_observations', 'obs_0', 'observation_1', 'observation_7', 'action_1', 'raw_reward', 'penalty', '', 'item', 'element', 'list', old.toUpperCase()]);
      el.set(4, CT.BINARY, utf8.encode(name));
      recomputePaths(f.meta);
      if (r.next() < 0.7) setKv(f.meta, 'ARROW:schema', null);
      return { bytes: withFooter(b, f.start, f.meta), note: `column ${JSON.stringify(old)} renamed ${JSON.stringify(name)}` };
    }
    case 'row-counts': {
      const rgs = (f.meta.list(4) ?? []) as TStruct[];
      const rg = pick(r, rgs);
      const where = pick(r, ['file', 'row group', 'num_values', 'total_byte_size', 'uncompressed'] as const);
      const v = (cur: bigint) => interestingBig(r, cur);
      if (where === 'file') f.meta.set(3, CT.I64, v(f.meta.get(3) as bigint));
      else if (where === 'row group') rg.set(3, CT.I64, v(rg.get(3) as bigint));
      else if (where === 'total_byte_size') rg.set(2, CT.I64, v(rg.get(2) as bigint));
      else {
        const md = (pick(r, rg.list(1) ?? []) as TStruct).struct(3)!;
        const id = where === 'num_values' ? 5 : 6;
        md.set(id, CT.I64, v(md.get(id) as bigint));
      }
      return { bytes: withFooter(b, f.start, f.meta), note: `${where} count changed` };
    }
    case 'read-options':
      return { bytes: r.next() < 0.25 ? bitflips(r, b) : b, note: 'read options' };
    case 'kv-metadata': {
      const key = pick(r, ['obsDim', 'actDim', 'env', 'mopo.layout', 'mopo.schema']);
      const value = pick(r, ['1000000000', '0', '-3', 'abc', '1e9', '3.5', '2', '4', '', null, 'halfcheetah', '9007199254740993']);
      setKv(f.meta, key, value);
      return { bytes: withFooter(b, f.start, f.meta), note: `metadata ${key} = ${JSON.stringify(value)}` };
    }
    case 'arrow-schema': {
      const kv = (f.meta.list(5) ?? []).find((x) => x instanceof TStruct && x.str(1) === 'ARROW:schema') as TStruct | undefined;
      if (!kv) return { bytes: bitflips(r, b, f.start, b.length), note: 'no ARROW:schema: footer bit flips' };
      const raw = Buffer.from(kv.str(2) ?? '', 'base64');
      const u = r.next();
      const mutated = u < 0.5 ? bitflips(r, raw) : u < 0.8 ? overwriteRun(r, raw) : truncate(r, raw);
      const text = r.next() < 0.1 ? '!!not base64!!' : Buffer.from(mutated).toString('base64');
      kv.set(2, CT.BINARY, utf8.encode(text));
      return { bytes: withFooter(b, f.start, f.meta), note: 'ARROW:schema flatbuffer mutated' };
    }
    case 'page-header':
    case 'chunk-bytes': {
      const rgs = (f.meta.list(4) ?? []) as TStruct[];
      const rg = pick(r, rgs);
      const ccs = (rg.list(1) ?? []) as TStruct[];
      const md = pick(r, ccs).struct(3)!;
      const data = Number(md.get(9) as bigint);
      const dict = md.get(11);
      const start = typeof dict === 'bigint' && dict > 0n && Number(dict) < data ? Number(dict) : data;
      const size = Number(md.get(7) as bigint);
      if (m === 'chunk-bytes') {
        const u = r.next();
        return { bytes: u < 0.6 ? bitflips(r, b, start, start + size) : overwriteRun(r, b, start, start + size), note: `column chunk bytes ${start}–${start + size}` };
      }
      // decode the first page header of the chunk, change one value, splice it back
      let hdr: { value: TStruct; end: number };
      try {
        hdr = decodeThriftStruct(b, start);
      } catch {
        return { bytes: bitflips(r, b, start, start + 32), note: 'page header bit flips' };
      }
      let note: string;
      if (r.next() < 0.5) {
        // the sizes and counts a decoder allocates by
        const target = pick(r, ['uncompressed', 'compressed', 'num_values'] as const);
        const h = hdr.value;
        const sub = h.struct(5) ?? h.struct(7) ?? h.struct(8);
        const cur = target === 'uncompressed' ? h.int(2) : target === 'compressed' ? h.int(3) : sub?.int(1);
        const v = pick(r, [0x7fffffff, 1_000_000_000, 2 ** 28, 2 ** 26, 2 ** 22, 0, -1, (cur ?? 0) * 2, (cur ?? 0) + 1]);
        if (target === 'num_values') sub?.set(1, CT.I32, v);
        else h.set(target === 'uncompressed' ? 2 : 3, CT.I32, v);
        note = `${target} ${cur} → ${v}`;
      } else note = mutateThriftTree(r, hdr.value, r.next() < 0.85 ? 'value' : 'structure');
      const enc = encodeThriftStruct(hdr.value);
      const delta = enc.length - (hdr.end - start);
      shiftOffsets(f.meta, start, delta, md);
      const body = concat(b.subarray(0, start), enc, b.subarray(hdr.end, f.start));
      return { bytes: withFooter(body, body.length, f.meta), note: `page header at ${start}: ${note}` };
    }
  }
}

// JSON documents (manifests, pipelines)

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
interface JsonPlace {
  parent: Json[] | { [k: string]: Json } | null;
  key: string | number;
  path: string;
}
function places(doc: Json): JsonPlace[] {
  const out: JsonPlace[] = [];
  const visit = (v: Json, parent: JsonPlace['parent'], key: string | number, path: string) => {
    out.push({ parent, key, path });
    if (Array.isArray(v)) v.forEach((x, i) => visit(x, v, i, `${path}[${i}]`));
    else if (v && typeof v === 'object') for (const k of Object.keys(v)) visit(v[k]!, v, k, path ? `${path}.${k}` : k);
  };
  visit(doc, null, '', '');
  return out;
}
function getAt(p: JsonPlace, root: Json): Json {
  return p.parent === null ? root : (p.parent as Record<string | number, Json>)[p.key]!;
}
const HUGE = [1e9, 1e15, 2 ** 53 + 2, 1e308, -1, -1e9, 0, 0.5, -0.0, 2 ** 31, 2 ** 32 + 1, 123456789.123];
const WRONG: Json[] = [null, true, false, 0, -1, 1e308, '', 'x', '1', [], [1, 2], {}, { a: 1 }, '../../etc/passwd'];

/** Deeply nested JSON text; documents hold DEEP_MARK in its place until they are written out. */
function deepText(r: Rng): string {
  const depth = pick(r, [50, 500, 5000, 50_000, 200_000]);
  return r.next() < 0.5 ? '['.repeat(depth) + ']'.repeat(depth) : '{"a":'.repeat(depth) + '1' + '}'.repeat(depth);
}
const DEEP_MARK = '\u0000deep-nesting\u0000';
/** JSON text of a document; DEEP_MARK strings become the deep text (JSON.stringify would overflow on it). */
function jsonText(doc: Json, deep: string | undefined, indent?: number): string {
  const t = JSON.stringify(doc, null, indent);
  return deep ? t.replace(JSON.stringify(DEEP_MARK), deep) : t;
}

/** A generic mutation at a random place of a JSON document; returns the new document. */
function mutateJsonValue(r: Rng, doc: Json, op?: string): { doc: Json; note: string; deep?: string } {
  const ps = places(doc);
  const p = pick(r, ps);
  const cur = getAt(p, doc);
  op ??= pick(r, ['wrong-type', 'delete', 'unknown-key', 'huge-number', 'string', 'deep']);
  let value: Json | undefined;
  switch (op) {
    case 'wrong-type':
      value = pick(r, WRONG);
      break;
    case 'delete':
      if (p.parent === null) return { doc: null, note: 'document → null' };
      if (Array.isArray(p.parent)) p.parent.splice(p.key as number, 1);
      else delete (p.parent as Record<string, Json>)[p.key];
      return { doc, note: `deleted ${p.path}` };
    case 'unknown-key': {
      const objs = ps.map((q) => getAt(q, doc)).filter((v): v is { [k: string]: Json } => !!v && typeof v === 'object' && !Array.isArray(v));
      if (!objs.length) return { doc, note: 'no object' };
      const o = pick(r, objs);
      const k = pick(r, ['extra', '__proto__', 'constructor', 'stage', '', 'rowsPerShard', 'Rows']);
      o[k] = pick(r, WRONG);
      return { doc, note: `added key ${JSON.stringify(k)}` };
    }
    case 'huge-number':
      value = typeof cur === 'number' ? pick(r, [...HUGE, -cur, cur * 1e6, cur + 0.5]) : pick(r, HUGE);
      break;
    case 'string':
      value = typeof cur === 'string' ? pick(r, ['', cur + cur, cur.toUpperCase(), cur.slice(1), 'ä\u0000', 'x'.repeat(100_000), `${cur}/..`, '/']) : (JSON.stringify(cur) ?? 'undefined').slice(0, 200);
      break;
    case 'deep':
      value = DEEP_MARK;
      break;
  }
  const deep = op === 'deep' ? { deep: deepText(r) } : {};
  if (p.parent === null) return { doc: value ?? null, note: `document → ${op}`, ...deep };
  (p.parent as Record<string | number, Json>)[p.key] = value!;
  return { doc, note: `${op} at ${p.path || '(top)'}`, ...deep };
}

function mutateJsonText(r: Rng, text: string): { text: string; note: string } {
  const u = r.next();
  if (u < 0.25) {
    const n = r.int(text.length);
    return { text: text.slice(0, n), note: `text truncated to ${n} chars` };
  }
  if (u < 0.4) {
    const i = r.int(text.length);
    return { text: text.slice(0, i) + text.slice(i + 1), note: `char ${i} deleted` };
  }
  if (u < 0.55) {
    const i = r.int(text.length);
    return { text: text.slice(0, i) + pick(r, ['{', '}', '[', ']', ',', '"', ':', '\\', 'NaN', '\u0000', '//']) + text.slice(i), note: `char inserted at ${i}` };
  }
  if (u < 0.65) return { text: '', note: 'empty file' };
  if (u < 0.72) return { text: '\ufeff' + text, note: 'byte-order mark' };
  if (u < 0.8) return { text: Buffer.from(randomBytes(r, 1 + r.int(512))).toString('latin1'), note: 'binary garbage' };
  if (u < 0.88) return { text: pick(r, ['null', '[]', '42', '"text"', 'true', '{}', '[{}]']), note: 'another JSON value' };
  if (u < 0.94) return { text: text.replace(/}\s*$/, ',}'), note: 'trailing comma' };
  return { text: text.replace(/"/g, "'"), note: 'single quotes' };
}

// Shard sets

export const SHARD_MUTATORS = ['manifest-value', 'manifest-targeted', 'manifest-text', 'shard-bytes', 'shard-bytes-rehashed', 'shard-swap', 'shard-missing', 'shard-metadata'] as const;

function rehash(manifest: { shards: Array<{ file: string; bytes: number; sha256: string }> }, file: string, bytes: Uint8Array): void {
  for (const s of manifest.shards) {
    if (s.file === file) {
      s.bytes = bytes.byteLength;
      s.sha256 = sha256Hex(bytes);
    }
  }
}

/** Copies the seed set into `dir` and mutates it there. */
export function mutateShards(r: Rng, seeds: Seeds, dir: string, m: (typeof SHARD_MUTATORS)[number]): string {
  const useB = r.next() < 0.25;
  cpSync(useB ? seeds.shards.b : seeds.shards.a, dir, { recursive: true });
  const mpath = join(dir, MANIFEST_FILE);
  const text = readFileSync(mpath, 'utf8');
  const manifest = JSON.parse(text) as { shards: Array<{ file: string; rows: number; bytes: number; sha256: string }>; schema: { obsDim: number; actDim: number } | null; rows: number } & Record<string, Json>;
  const save = () => writeFileSync(mpath, JSON.stringify(manifest, null, 2));
  const shard = pick(r, manifest.shards);
  const spath = join(dir, shard.file);
  const set = useB ? 'b' : 'a';
  switch (m) {
    case 'manifest-value': {
      const { doc, note, deep } = mutateJsonValue(r, manifest as unknown as Json);
      writeFileSync(mpath, jsonText(doc, deep));
      return `set ${set}: manifest ${note}`;
    }
    case 'manifest-text': {
      const t = mutateJsonText(r, text);
      writeFileSync(mpath, t.text);
      return `set ${set}: manifest ${t.note}`;
    }
    case 'manifest-targeted': {
      const s = manifest.shards;
      const k = r.int(s.length);
      const edits: Array<[string, () => void]> = [
        ['schema.obsDim = 1e9', () => (manifest.schema!.obsDim = 1e9)],
        ['schema.actDim = 0', () => (manifest.schema!.actDim = 0)],
        ['schema.obsDim = -3', () => (manifest.schema!.obsDim = -3)],
        ['schema = null', () => ((manifest as Record<string, Json>).schema = null)],
        ['schema.columns = "x"', () => ((manifest.schema as unknown as Record<string, Json>).columns = 'x')],
        ['rows = -1', () => (manifest.rows = -1)],
        ['rows = 1e308', () => (manifest.rows = 1e308)],
        ['rows + 1', () => (manifest.rows += 1)],
        [`shards[${k}].bytes = -1`, () => (s[k]!.bytes = -1)],
        [`shards[${k}].bytes = 1e15`, () => (s[k]!.bytes = 1e15)],
        [`shards[${k}].rows = -5`, () => (s[k]!.rows = -5)],
        [`shards[${k}].rows = 2^53`, () => (s[k]!.rows = 2 ** 53)],
        [`shards[${k}].sha256 wrong`, () => (s[k]!.sha256 = sha256Hex(String(r.next())))],
        [`shards[${k}].sha256 = 123`, () => ((s[k] as unknown as Record<string, Json>).sha256 = 123)],
        [`shards[${k}].sha256 = null`, () => ((s[k] as unknown as Record<string, Json>).sha256 = null)],
        [`shards[${k}].sha256 uppercase`, () => (s[k]!.sha256 = s[k]!.sha256.toUpperCase())],
        [`shards[${k}].file = ../manifest`, () => (s[k]!.file = `../${dir.split('/').pop()}/${MANIFEST_FILE}`)],
        [`shards[${k}].file = /etc/hostname`, () => (s[k]!.file = '/etc/hostname')],
        [`shards[${k}].file = manifest.json`, () => (s[k]!.file = MANIFEST_FILE)],
        [`shards[${k}].file = ""`, () => (s[k]!.file = '')],
        [`shards[${k}].file = "."`, () => (s[k]!.file = '.')],
        [`shards[${k}].file = 300 chars`, () => (s[k]!.file = 'a'.repeat(300))],
        [`shards[${k}].file = 42`, () => ((s[k] as unknown as Record<string, Json>).file = 42)],
        [`shards[${k}].file = /dev/zero`, () => (s[k]!.file = '/dev/zero')],
        ['shards duplicated', () => s.push(...s)],
        ['shards = []', () => s.splice(0)],
        ['shards = null', () => ((manifest as Record<string, Json>).shards = null)],
        ['shards = {}', () => ((manifest as Record<string, Json>).shards = {})],
        [`shards[${k}] = null`, () => ((s as unknown as Json[])[k] = null)],
        [`shards[${k}] = "x"`, () => ((s as unknown as Json[])[k] = 'x')],
        ['complete = "true"', () => ((manifest as Record<string, Json>).complete = 'true')],
        ['complete = false', () => ((manifest as Record<string, Json>).complete = false)],
        ['format wrong', () => ((manifest as Record<string, Json>).format = 'mopo-arrow-shard')],
        ['version 99', () => ((manifest as Record<string, Json>).version = 99)],
        ['stage = 7', () => ((manifest as Record<string, Json>).stage = 7)],
        ['configHash missing', () => delete (manifest as Record<string, Json>).configHash],
        ['inputs = "x"', () => ((manifest as Record<string, Json>).inputs = 'x')],
      ];
      const [note, edit] = pick(r, edits);
      edit();
      save();
      return `set ${set}: manifest ${note}`;
    }
    case 'shard-bytes':
    case 'shard-bytes-rehashed': {
      const b = new Uint8Array(readFileSync(spath));
      const u = r.next();
      const out = u < 0.35 ? bitflips(r, b) : u < 0.6 ? overwriteRun(r, b) : u < 0.85 ? truncate(r, b) : appendGarbage(r, b);
      writeFileSync(spath, out);
      if (m === 'shard-bytes-rehashed') {
        rehash(manifest, shard.file, out);
        save();
      }
      return `set ${set}: ${shard.file} bytes mutated (${out.length} of ${b.length} bytes)${m === 'shard-bytes-rehashed' ? ', manifest checksum updated' : ''}`;
    }
    case 'shard-swap': {
      const other = useB ? seeds.shards.a : seeds.shards.b;
      const names = readdirSync(other).filter((n) => n.endsWith('.arrow'));
      const bytes = new Uint8Array(readFileSync(join(other, pick(r, names))));
      writeFileSync(spath, bytes);
      rehash(manifest, shard.file, bytes);
      save();
      return `set ${set}: ${shard.file} replaced by a shard of the other set, checksum updated`;
    }
    case 'shard-missing': {
      const u = r.next();
      rmSync(spath);
      if (u < 0.3) mkdirSync(spath);
      else if (u < 0.5) writeFileSync(spath, '');
      return `set ${set}: ${shard.file} ${u < 0.3 ? 'replaced by a directory' : u < 0.5 ? 'emptied' : 'deleted'}`;
    }
    case 'shard-metadata': {
      // a well-formed shard whose schema metadata lies (huge or bad dims, another env)
      const t = tableFromIPC(readFileSync(spath));
      const key = pick(r, ['obsDim', 'actDim', 'env', 'mopo.schema']);
      const value = pick(r, ['1000000000', '0', '-2', 'abc', '1.5', '2', '9007199254740993', '']);
      const meta = new Map(t.schema.metadata);
      meta.set(key, value);
      const schema = new Schema(t.schema.fields, meta);
      const bytes = RecordBatchFileWriter.writeAll(t.batches.map((rb) => new RecordBatch(schema, rb.data))).toUint8Array(true);
      writeFileSync(spath, bytes);
      rehash(manifest, shard.file, bytes);
      if (r.next() < 0.5 && manifest.schema && (key === 'obsDim' || key === 'actDim')) {
        (manifest.schema as unknown as Record<string, number>)[key] = Number(value);
        for (const s of manifest.shards) {
          if (s.file === shard.file) continue;
          const tt = tableFromIPC(readFileSync(join(dir, s.file)));
          const b = RecordBatchFileWriter.writeAll(tt.batches.map((rb) => new RecordBatch(schema, rb.data))).toUint8Array(true);
          writeFileSync(join(dir, s.file), b);
          rehash(manifest, s.file, b);
        }
        save();
        return `set ${set}: every shard's metadata ${key} = ${JSON.stringify(value)}, manifest agrees`;
      }
      save();
      return `set ${set}: ${shard.file} metadata ${key} = ${JSON.stringify(value)}, checksum updated`;
    }
  }
}

// Pipelines

export const PIPELINE_MUTATORS = ['json-value', 'stage', 'huge-numbers', 'source', 'deep-nesting', 'invalid-json', 'set-override'] as const;

/** `--set path=value` overrides as a user might type them (or mistype them). */
export function randomSets(r: Rng): string[] {
  const paths = ['seed', 'name', 'env', 'source.dataset', 'source.obsDim', 'source.layout', 'stages[0].stage', 'stages[1]', 'stages[2].x', 'stages[99].stage', 'stages.tee.rowsPerShard', 'stages.tee', 'stages.dropNonFinite.columns', 'stages.nope.x', '__proto__.polluted', 'constructor.prototype.x', 'a..b', '', 'stages[0][0]', 'source[0]', 'checkpointEvery', 'stages[0].stage.x', 'x.y.z', 'stages', 'source', 'stages[0].columns[3]'];
  const values = ['1', '-1', '1e308', 'null', 'true', '[]', '{}', '"str"', 'tee', '[1,2', '{"stage":"tee"}', '1e400', '', 'halfcheetah', '0.5'];
  return Array.from({ length: 1 + r.int(3) }, () => (r.next() < 0.08 ? pick(r, paths) : `${pick(r, paths)}=${pick(r, values)}`));
}

export function mutatePipeline(r: Rng, seeds: Seeds, caseDir: string, m: (typeof PIPELINE_MUTATORS)[number]): { text: string; note: string } {
  const name = pick(r, Object.keys(seeds.pipelines));
  const doc = structuredClone(seeds.pipelines[name]) as { [k: string]: Json } & { stages: Json[]; source: { [k: string]: Json } };
  const out = (d: Json, note: string, deep?: string) => ({ text: jsonText(d, deep, 2), note: `${name}: ${note}` });
  switch (m) {
    case 'json-value': {
      const { doc: d, note, deep } = mutateJsonValue(r, doc);
      return out(d, note, deep);
    }
    case 'deep-nesting': {
      const { doc: d, note, deep } = mutateJsonValue(r, doc, 'deep');
      return out(d, note, deep);
    }
    case 'invalid-json': {
      const t = mutateJsonText(r, JSON.stringify(doc, null, 2));
      return { text: t.text, note: `${name}: ${t.note}` };
    }
    case 'set-override':
      return out(doc, 'unchanged (the case adds --set overrides)');
    case 'stage': {
      const s = doc.stages;
      const i = r.int(Math.max(1, s.length));
      const edits: Array<[string, () => void]> = [
        ['unknown stage name', () => (s[i] = { stage: pick(r, ['dropNaN', 'Tee', 'clip-actions', '', 'normalise', 'tee ', 'toString', '__proto__']) })],
        ['stage name a number', () => (s[i] = { stage: 3 })],
        ['stage without a name', () => (s[i] = { rowsPerShard: 4 })],
        ['stage = null', () => (s[i] = null)],
        ['stage = "tee"', () => (s[i] = 'tee')],
        ['stage = []', () => (s[i] = [])],
        ['stages = {}', () => (doc.stages = {} as unknown as Json[])],
        ['stages = "tee"', () => (doc.stages = 'tee' as unknown as Json[])],
        ['stages = []', () => (doc.stages = [])],
        ['a stage twice', () => s.push(s[i] ?? { stage: 'tee' })],
        ['stages reversed', () => s.reverse()],
        ['two tees of one name', () => s.push({ stage: 'tee', name: 'same' }, { stage: 'tee', name: 'same' })],
        ['tee name with a slash', () => s.push({ stage: 'tee', name: pick(r, ['../../x', '/tmp', 'a/b', '..', '.']) })],
        ['unknown field in a stage', () => s[i] && typeof s[i] === 'object' && ((s[i] as Record<string, Json>)[pick(r, ['colums', 'rowsPerShard', 'x'])] = 1)],
        ['a MOPO stage alone', () => s.push({ stage: pick(r, ['rollout', 'sac', 'evaluate']) })],
        ['100 stages', () => doc.stages.push(...Array.from({ length: 100 }, () => ({ stage: 'scaleReward', scale: 1 }) as Json))],
      ];
      const [note, edit] = pick(r, edits);
      edit();
      return out(doc, note);
    }
    case 'huge-numbers': {
      const edits: Array<[string, () => void]> = [
        ['tee.rowsPerShard', () => doc.stages.push({ stage: 'tee', rowsPerShard: pick(r, [1, 1e9, 2 ** 53, 1e308, 0, -1, 1.5]) })],
        ['selectColumns.observationDims', () => doc.stages.push({ stage: 'selectColumns', observationDims: pick(r, [[1e9], [0, 0, 0], [2 ** 31], [-1], [], [3], [2, 1, 0]]) })],
        ['filterEpisodes', () => doc.stages.push({ stage: 'filterEpisodes', ...pick(r, [{ minLength: 1e300 }, { maxLength: 1 }, { minReturnQuantile: 1 }, { minReturnQuantile: 0 }, { minReturn: 1e308 }, { minReturn: -1e308 }, { minLength: 5, maxLength: 2 }, { minLength: 2 ** 53 }] as Array<Record<string, Json>>) })],
        ['scaleReward', () => doc.stages.push({ stage: 'scaleReward', ...pick(r, [{ scale: 1e308 }, { scale: -1e308, shift: 1e308 }, { scale: 0 }, { shift: -1e308 }] as Array<Record<string, Json>>) })],
        ['clipActions', () => doc.stages.push({ stage: 'clipActions', ...pick(r, [{ low: 1e308, high: -1e308 }, { low: [-1, -1, -1], high: [1, 1, 1] }, { low: [], high: [] }, { low: 1, high: 0 }, { env: 'halfcheetah' }, { env: 'nope' }, { low: -1e308, high: 1e308 }] as Array<Record<string, Json>>) })],
        ['seed', () => (doc.seed = pick(r, [2 ** 53, -1e15, 1e308, -1, 2 ** 32]))],
        ['source.obsDim', () => (doc.source.obsDim = pick(r, [1e9, 2 ** 31, 1, 4]))],
        ['source.actDim', () => (doc.source.actDim = pick(r, [1e9, 2 ** 31, 2, 7]))],
        ['checkpointEvery', () => (doc.checkpointEvery = pick(r, [1e308, 0, 2 ** 53]))],
      ];
      const [note, edit] = pick(r, edits);
      edit();
      return out(doc, note);
    }
    case 'source': {
      const src = doc.source;
      const edits: Array<[string, () => void]> = [
        ['dataset missing file', () => (src.dataset = 'no-such-file.parquet')],
        ['dataset ""', () => (src.dataset = '')],
        ['dataset "."', () => (src.dataset = '.')],
        ['dataset = the shard set', () => (src.dataset = '../../seeds/shards')],
        ['dataset = a manifest file', () => (src.dataset = '../../seeds/shards/manifest.json')],
        ['dataset = a shard file', () => (src.dataset = '../../seeds/shards/shard-00000.arrow')],
        ['dataset = /dev/null', () => (src.dataset = '/dev/null')],
        ['dataset = itself', () => (src.dataset = 'pipeline.json')],
        ['dataset = the trajectory file', () => (src.dataset = '../../seeds/traj.parquet')],
        ['dataset = the fsl file', () => (src.dataset = '../../seeds/fsl.parquet')],
        [
          'dataset = a damaged Parquet file',
          () => {
            const seed = new Uint8Array(readFileSync(seeds.parquet.flat));
            writeFileSync(join(caseDir, 'data.parquet'), mutateParquet(r, seed, pick(r, PARQUET_MUTATORS)).bytes);
            src.dataset = 'data.parquet';
          },
        ],
        ['layout trajectories', () => (src.layout = 'trajectories')],
        ['layout transitions', () => (src.layout = 'transitions')],
        ['columns: observation → reward', () => (src.columns = { observation: 'reward' })],
        ['columns: observation list', () => (src.columns = { observation: ['observation_0', 'missing'] })],
        ['columns: unknown role', () => (src.columns = { obs: 'observation' })],
        ['columns: episode → reward', () => (src.columns = { episode: 'reward', step: 'observation_1' })],
        ['columns: next_observation → observation', () => (src.columns = { next_observation: 'observation' })],
        ['columns: __proto__', () => (src.columns = JSON.parse('{"__proto__": "x"}') as Json)],
        ['allowNonFinite = "yes"', () => (src.allowNonFinite = 'yes')],
        ['rows (not a source field)', () => (src.rows = { start: 5, end: 2 })],
      ];
      const [note, edit] = pick(r, edits);
      edit();
      return out(doc, note);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The campaign

interface Args {
  cases: number;
  seed: number;
  out: string;
  cliFraction: number;
  batch: number;
  timeoutMs: number;
  rssLimitMb: number;
  heapMb: number;
  quiet: boolean;
  /** Keep every case's input under <out>/work (not only failures). */
  keep?: boolean;
  /** Run only these case ids (of a campaign with the same seed), for reproduction. */
  only?: number[];
}

function parseArgs(argv: string[]): Args {
  const a: Args = { cases: 2000, seed: 1, out: 'runs/fuzz', cliFraction: 0.1, batch: 25, timeoutMs: 20_000, rssLimitMb: 1024, heapMb: 256, quiet: false };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i]!;
    const v = argv[i + 1];
    const num = () => {
      const n = Number(v);
      if (v === undefined || !Number.isFinite(n)) throw new Error(`${k} needs a number`);
      i++;
      return n;
    };
    if (k === '--cases') a.cases = num();
    else if (k === '--seed') a.seed = num();
    else if (k === '--cli-fraction') a.cliFraction = num();
    else if (k === '--batch') a.batch = Math.max(1, num());
    else if (k === '--timeout') a.timeoutMs = num() * 1000;
    else if (k === '--rss-limit-mb') a.rssLimitMb = num();
    else if (k === '--heap-mb') a.heapMb = num();
    else if (k === '--out') {
      if (!v) throw new Error('--out needs a directory');
      a.out = v;
      i++;
    } else if (k === '--quiet') a.quiet = true;
    else if (k === '--keep') a.keep = true;
    else if (k === '--only') {
      if (!v) throw new Error('--only needs case ids, e.g. 13,40');
      a.only = v.split(',').map(Number);
      i++;
    }
    else throw new Error(`unknown flag ${k}; flags: --cases N --seed N --out DIR --cli-fraction F --batch N --timeout S --rss-limit-mb N --heap-mb N --only IDS --keep --quiet`);
  }
  return a;
}

const caseName = (id: number) => `case-${String(id).padStart(6, '0')}`;

/** Draws case `id` (deterministic given the campaign seed) and writes its input under work/. */
function makeCase(a: Args, seeds: Seeds, work: string, id: number): CaseSpec {
  const r = new Rng(a.seed, `fuzz-case-${id}`);
  const u = r.next();
  const target: Target = u < 0.5 ? 'parquet' : u < 0.75 ? 'shards' : 'pipeline';
  const mode = r.next() < a.cliFraction ? 'cli' : 'inproc';
  const dir = join(work, caseName(id));
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const runOut = join(dir, 'run');
  const read = r.next() < 0.3 ? { ...(r.next() < 0.5 ? { batchSize: 1 + r.int(20) } : {}), rows: { start: r.int(30), end: r.int(80) } } : undefined;
  if (target === 'parquet') {
    const which = pick(r, ['flat', 'flat', 'fsl', 'list', 'traj', 'traj-flat', 'nulls'] as const);
    const mutator = pick(r, PARQUET_MUTATORS);
    const { bytes, note } = mutateParquet(r, new Uint8Array(readFileSync(seeds.parquet[which])), mutator);
    const options = mutator === 'read-options' ? randomReadOptions(r) : undefined;
    const input = join(dir, 'input.parquet');
    writeFileSync(input, bytes);
    // these mutations leave the data as it was: a read either fails or gives the seed's rows
    const keeps = ['row-counts', 'arrow-schema', 'append', 'magic', 'footer-length', 'truncate'].includes(mutator) || (mutator === 'kv-metadata' && which !== 'traj-flat');
    const expectRows = keeps && !read?.rows ? seeds.rows[which] : undefined;
    return { id, target, mutator: `${which}/${mutator}`, mode, input, runOut, ...(read ? { read } : {}), ...(options ? { options } : {}), ...(expectRows !== undefined ? { expectRows } : {}), note: options ? `${note} ${JSON.stringify(options)}` : note };
  }
  if (target === 'shards') {
    const mutator = pick(r, SHARD_MUTATORS);
    const input = join(dir, 'shards');
    const note = mutateShards(r, seeds, input, mutator);
    return { id, target, mutator, mode, input, runOut, ...(read ? { read } : {}), note };
  }
  const mutator = pick(r, PIPELINE_MUTATORS);
  const { text, note } = mutatePipeline(r, seeds, dir, mutator);
  const input = join(dir, 'pipeline.json');
  writeFileSync(input, text);
  const sets = mutator === 'set-override' || r.next() < 0.1 ? randomSets(r) : undefined;
  return { id, target, mutator, mode, input, runOut, ...(sets ? { sets } : {}), note: sets ? `${note}; --set ${sets.map((x) => JSON.stringify(x)).join(' ')}` : note };
}

interface Report {
  command: string;
  seed: number;
  cases: number;
  counts: Record<Outcome, number>;
  wallSeconds: number;
  byTarget: Record<string, Record<string, Record<Outcome, number>>>;
  byMode: Record<string, Record<Outcome, number>>;
  errorClasses: Array<{ class: string; count: number; example: string }>;
  failures: Array<{ id: number; target: Target; mutator: string; mode: string; note?: string; detail: string; saved: string }>;
  slowest: Array<{ id: number; target: Target; mutator: string; mode: string; ms: number }>;
  peakRssMb: { inproc: number; cli: number };
}

/** A message's shape: paths, numbers and quoted names blanked, cut short. */
function errorClass(msg: string): string {
  return msg
    .replace(/^[^ ]*\/[^ :]*: /, '')
    .replace(/\/[^\s:,)]+/g, '<path>')
    .replace(/'[^']*'|"[^"]*"/g, '<name>')
    .replace(/-?\d+(\.\d+)?(e[+-]?\d+)?/gi, 'N')
    .replace(/[0-9a-f]{12}…/g, '<hash>…')
    .slice(0, 60);
}

async function runCampaign(a: Args): Promise<number> {
  const t0 = Date.now();
  const out = resolve(a.out);
  const work = join(out, 'work');
  const failDir = join(out, 'failures');
  rmSync(work, { recursive: true, force: true });
  rmSync(failDir, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const seeds = await makeSeeds(join(out, 'seeds'));
  const log = a.quiet ? () => {} : (m: string) => process.stderr.write(m + '\n');
  const results = new Map<number, CaseResult>();
  const specs = new Map<number, CaseSpec>();
  const counts: Record<Outcome, number> = { ok: 0, clear: 0, failure: 0 };
  const peak = { inproc: 0, cli: 0 };

  const finish = (spec: CaseSpec, res: CaseResult) => {
    results.set(spec.id, res);
    counts[res.outcome]++;
    const dir = join(work, caseName(spec.id));
    if (res.outcome === 'failure') {
      mkdirSync(failDir, { recursive: true });
      const saved = join(failDir, caseName(spec.id));
      renameSync(dir, saved);
      const rel = (p: string) => p.replace(dir, saved);
      const repro =
        spec.mode === 'cli'
          ? `node ${CLI} ${spec.target === 'pipeline' ? `run ${rel(spec.input)} --out ${rel(spec.runOut)} --quiet ${(spec.sets ?? []).map((x) => `--set ${JSON.stringify(x)}`).join(' ')}` : `inspect ${rel(spec.input)} --json --quiet ${readOptionFlags(spec.options ?? {}).map((x) => JSON.stringify(x)).join(' ')}`}`
          : `node ${SELF} --replay ${saved}`;
      writeFileSync(join(saved, 'case.json'), JSON.stringify({ ...spec, input: rel(spec.input), runOut: rel(spec.runOut), result: res, repro }, null, 2) + '\n');
      log(`  FAILURE case ${spec.id} (${spec.target} ${spec.mutator}, ${spec.mode}): ${res.detail.split('\n')[0]!.slice(0, 300)}`);
    } else if (!a.keep) rmSync(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
  };

  const all: number[] = a.only ?? Array.from({ length: a.cases }, (_, i) => i);
  const chunk = Math.max(a.batch, 10);
  let done = 0;
  for (let c0 = 0; c0 < all.length; c0 += chunk) {
    const ids = all.slice(c0, c0 + chunk);
    for (const id of ids) specs.set(id, makeCase(a, seeds, work, id));
    // in-process cases: batches in worker children, resumed after a crash
    let queue = ids.map((id) => specs.get(id)!).filter((s) => s.mode === 'inproc');
    while (queue.length) {
      const batchFile = join(work, `batch-${queue[0]!.id}.json`);
      writeFileSync(batchFile, JSON.stringify(queue));
      let current: CaseSpec | undefined;
      let caseStart = 0;
      let casePeak = 0;
      const r = await runChild([SELF, '--worker', batchFile], {
        timeoutMs: a.timeoutMs,
        rssLimitMb: a.rssLimitMb,
        heapMb: a.heapMb,
        onLine: (line, rss) => {
          let msg: { id: number; event?: string } & Partial<CaseResult>;
          try {
            msg = JSON.parse(line) as typeof msg;
          } catch {
            return;
          }
          casePeak = Math.max(casePeak, rss);
          if (msg.event === 'start') {
            current = specs.get(msg.id);
            caseStart = Date.now();
            casePeak = rss;
            return 'reset';
          }
          const spec = specs.get(msg.id);
          if (spec && msg.outcome && !results.has(msg.id)) {
            finish(spec, { id: msg.id, outcome: msg.outcome, detail: msg.detail ?? '', ms: msg.ms ?? 0, peakRssMb: casePeak });
            current = undefined;
          }
          return undefined;
        },
      });
      peak.inproc = Math.max(peak.inproc, r.peakRssMb);
      rmSync(batchFile, { force: true });
      const unfinished = queue.filter((s) => !results.has(s.id));
      if (unfinished.length === 0) break;
      const cur = current ?? unfinished[0]!;
      const why = r.killedFor === 'timeout' ? `hang: no result within ${a.timeoutMs / 1000} s` : r.killedFor === 'memory' ? `memory: the worker's resident set passed ${a.rssLimitMb} MB (peak ${r.peakRssMb} MB)` : `the worker died (exit ${r.code}, signal ${r.signal})`;
      finish(cur, { id: cur.id, outcome: 'failure', detail: `${why}; stderr: ${tail(r.stderr)}`, ms: Date.now() - caseStart, peakRssMb: r.peakRssMb });
      queue = unfinished.filter((s) => s.id !== cur.id);
    }
    // CLI cases: one child each
    for (const spec of ids.map((id) => specs.get(id)!).filter((s) => s.mode === 'cli')) {
      const t = Date.now();
      const args = spec.target === 'pipeline' ? [CLI, 'run', spec.input, '--out', spec.runOut, '--quiet', ...(spec.sets ?? []).flatMap((x) => ['--set', x])] : [CLI, 'inspect', spec.input, '--json', '--quiet', ...readOptionFlags(spec.options ?? {})];
      const r = await runChild(args, { timeoutMs: a.timeoutMs, rssLimitMb: a.rssLimitMb, heapMb: a.heapMb });
      peak.cli = Math.max(peak.cli, r.peakRssMb);
      finish(spec, { id: spec.id, ...classifyCli(spec, r), ms: Date.now() - t, peakRssMb: r.peakRssMb });
    }
    done += ids.length;
    log(`fuzz: ${done}/${a.cases} cases, ok ${counts.ok}, clear errors ${counts.clear}, failures ${counts.failure} (${Math.round((Date.now() - t0) / 1000)} s)`);
  }
  if (!a.keep) rmSync(work, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });

  // the report
  const byTarget: Report['byTarget'] = {};
  const byMode: Report['byMode'] = {};
  const classes = new Map<string, { count: number; example: string }>();
  const zero = (): Record<Outcome, number> => ({ ok: 0, clear: 0, failure: 0 });
  for (const [id, res] of results) {
    const s = specs.get(id)!;
    ((byTarget[s.target] ??= {})[s.mutator] ??= zero())[res.outcome]++;
    (byMode[s.mode] ??= zero())[res.outcome]++;
    if (res.outcome === 'clear') {
      const k = `${s.target}: ${errorClass(res.detail)}`;
      const c = classes.get(k) ?? { count: 0, example: res.detail.slice(0, 400) };
      c.count++;
      classes.set(k, c);
    }
  }
  const wallSeconds = Math.round((Date.now() - t0) / 100) / 10;
  const report: Report = {
    command: `node dist/scripts/fuzz.js ${process.argv.slice(2).join(' ')}`,
    seed: a.seed,
    cases: results.size,
    counts,
    wallSeconds,
    byTarget,
    byMode,
    errorClasses: [...classes].map(([k, v]) => ({ class: k, ...v })).sort((x, y) => y.count - x.count),
    failures: [...results.values()]
      .filter((x) => x.outcome === 'failure')
      .map((x) => {
        const s = specs.get(x.id)!;
        return { id: x.id, target: s.target, mutator: s.mutator, mode: s.mode, ...(s.note ? { note: s.note } : {}), detail: x.detail, saved: join(failDir, caseName(x.id)) };
      }),
    slowest: [...results.values()]
      .sort((x, y) => y.ms - x.ms)
      .slice(0, 10)
      .map((x) => {
        const s = specs.get(x.id)!;
        return { id: x.id, target: s.target, mutator: s.mutator, mode: s.mode, ms: x.ms };
      }),
    peakRssMb: peak,
  };
  writeFileSync(join(out, 'report.json'), JSON.stringify(report, null, 2) + '\n');
  log(`report: ${join(out, 'report.json')} (wall ${wallSeconds} s; peak resident set ${peak.inproc} MB in-process workers, ${peak.cli} MB CLI)`);
  process.stdout.write(`fuzz: ${results.size} cases, ok ${counts.ok}, clear errors ${counts.clear}, failures ${counts.failure}\n`);
  return counts.failure > 0 ? 1 : 0;
}

// ---------------------------------------------------------------------------------------------
// Worker and replay

async function workerMain(batchFile: string): Promise<void> {
  const specs = JSON.parse(readFileSync(batchFile, 'utf8')) as CaseSpec[];
  let current: number | undefined;
  const emit = (x: unknown) => process.stdout.write(JSON.stringify(x) + '\n');
  const crash = (what: string) => (e: unknown) => {
    if (current !== undefined) emit({ id: current, outcome: 'failure', detail: `${what}: ${errorDetail(e)}`, ms: 0 });
    process.exitCode = 70;
    process.stdout.write('', () => process.exit(70));
  };
  process.on('uncaughtException', crash('uncaught exception'));
  process.on('unhandledRejection', crash('unhandled promise rejection'));
  for (const s of specs) {
    current = s.id;
    emit({ id: s.id, event: 'start' });
    const t = Date.now();
    const r = await runCaseInProcess(s);
    emit({ id: s.id, ...r, ms: Date.now() - t });
    current = undefined;
  }
}

async function replay(dir: string): Promise<number> {
  const spec = JSON.parse(readFileSync(join(dir, 'case.json'), 'utf8')) as CaseSpec;
  process.stderr.write(`case ${spec.id}: ${spec.target} ${spec.mutator} (${spec.note ?? ''})\n`);
  const r = await runCaseInProcess(spec);
  process.stdout.write(`${r.outcome}: ${r.detail}\n`);
  return r.outcome === 'failure' ? 1 : 0;
}

async function main(argv: string[]): Promise<void> {
  if (argv[0] === '--worker') return workerMain(argv[1]!);
  if (argv[0] === '--replay') {
    process.exitCode = await replay(resolve(argv[1]!));
    return;
  }
  let a: Args;
  try {
    a = parseArgs(argv);
  } catch (e) {
    process.stderr.write(`fuzz: ${(e as Error).message}\n`);
    process.exitCode = 2;
    return;
  }
  process.exitCode = await runCampaign(a);
}

if (isMain(import.meta.url)) await main(process.argv.slice(2));

