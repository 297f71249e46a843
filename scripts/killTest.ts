#!/usr/bin/env node
// The kill test: a short Pendulum MOPO pipeline (preprocessing with a tee, a tiny ensemble, rollout
// rounds teed to shards, many short SAC epochs evaluated every epoch, a checkpoint every 2 epochs)
// is run through the real CLI (`mopo run pipeline.json --out X`) and SIGKILLed at seeded random
// moments, then continued with `mopo run --resume X`, killed again, … until a resumed run completes.
// Every completed run directory is then checked against an uninterrupted reference run of the same
// pipeline: no temporary or orphaned file, no LOCK, one checkpoint (latest.json's), every shard set
// complete and verified, and the same numbers (metrics.jsonl line by line without timing fields,
// the saved rollout rounds, the ensemble, the final agent and model buffer, summary.json, plots).
//
//   node dist/scripts/killTest.js --kills 50 --seed 1 [--out runs/kill-test] [--epochs 20]
//
// Kills are aimed: each picks a phase still ahead of the child, one of those aimed at least so far
// (startup, preprocess, the commit of the preprocessed shards, ensemble epochs, the ensemble's
// per-epoch state swap and final save, the first rollout round, SAC updates, a round's shard write,
// evaluation, the metrics/plot writes of an epoch end, a checkpoint, the final writes), waits for
// that phase's n-th start line (the child runs with MOPO_TRACE_PHASES=1, pipeline/runLock.ts
// tracePhase) and kills after a random delay scaled by that phase's length in the reference run. The phase recorded is the last one the child announced
// before the kill; a kill with a temporary file on disk is counted as "during a write".
//
// Stop checks follow: Ctrl-C (SIGINT) while SAC learns and once right at an epoch's end, and a
// SIGTERM while SAC learns (what `kill` and schedulers send), must each exit with code 130 after a
// checkpoint at the epoch the last metrics line is for, print the resume command, and that command
// must finish the run with the reference's numbers.
//
// Output: `kill test: K kills survived in R runs, F failures` and <out>/report.json (kills per
// phase, per aimed phase, during writes, every kill and every failure with the child's log tail).
// Exit code 1 when there were failures.
import { TEMP_FILE_NAME } from '../pipeline/atomic.js';
import { walkDir } from '../pipeline/runLock.js';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isDeepStrictEqual } from 'node:util';
import { createInterface } from 'node:readline';
import { lastValueFrom, toArray } from 'rxjs';
import { pendulumRandomDataset } from '../pipeline/defaultDataset.js';
import { writeTransitionsFile } from '../operators/writeTransitions.js';
import { readManifest, readShards, MANIFEST_FILE } from '../operators/shards.js';
import { Rng } from '../pipeline/random.js';
import { isMain } from '../pipeline/isMain.js';

const HERE = dirname(fileURLToPath(import.meta.url));
/** The CLI next to this script in dist/ (dist/scripts/killTest.js → dist/pipeline/cli.js). */
export const CLI = resolve(HERE, '..', 'pipeline', 'cli.js');

export interface KillTestOptions {
  /** Kills to survive in total (whole runs are repeated until at least this many). */
  kills: number;
  seed: number;
  /** Directory for the dataset, the reference run, the killed runs, logs and report.json (replaced). */
  out: string;
  /** SAC epochs of the pipeline (every: 50 updates each). */
  epochs: number;
  /** At most this many kills in one run before it is let finish (at least 1). */
  maxKillsPerRun: number;
  /** The stop checks to run: Ctrl-C while SAC learns and right at an epoch's end (while its plots are written), SIGTERM while SAC learns and while a scheduled checkpoint is written. */
  stopChecks: StopCheckName[];
  backend: string;
  /** Longest a single child may run. */
  attemptTimeoutMs: number;
  log: (m: string) => void;
}

export const KILL_TEST_DEFAULTS: Omit<KillTestOptions, 'log'> = {
  kills: 50,
  seed: 1,
  out: 'runs/kill-test',
  epochs: 20,
  maxKillsPerRun: 5,
  stopChecks: ['sigint-mid-learning', 'sigint-at-epoch-end', 'sigterm-mid-learning', 'sigterm-at-checkpoint'],
  backend: 'wasm',
  attemptTimeoutMs: 300_000,
};

/** The phases a kill can aim at, in the order a run goes through them. */
export const PHASES = [
  'startup',
  'preprocess',
  'preprocess-summary',
  'dynamics',
  'dynamics-checkpoint',
  'dynamics-save',
  'first-round',
  'round-write',
  'learning',
  'evaluate',
  'epoch-end',
  'checkpoint',
  'finish',
] as const;
export type Phase = (typeof PHASES)[number];

export interface KillRecord {
  run: number;
  attempt: number;
  /** The phase the kill was aimed at, the occurrence and the delay after its start line. */
  target: Phase;
  occurrence: number;
  delayMs: number;
  /** The last phase line the child printed before the kill (startup: none yet), with its detail. */
  phase: string;
  detail: string;
  /** Milliseconds since the child started. */
  atMs: number;
  /** The child's temporary files on disk at the kill (a write in progress), relative to the run directory. */
  tempFiles: string[];
  /** The kill came before pipeline.json existed: the run was started over, not resumed. */
  beforePipelineFile: boolean;
}

export interface Failure {
  run: number | string;
  attempt: number;
  what: string;
  problems: string[];
  logTail: string[];
}

export type StopCheckName = 'sigint-mid-learning' | 'sigint-at-epoch-end' | 'sigterm-mid-learning' | 'sigterm-at-checkpoint';

export interface StopCheck {
  name: StopCheckName;
  ok: boolean;
  problems: string[];
  exitCode: number | null;
  stoppedAfterEpoch: number | null;
  checkpointEpoch: number | null;
  resumeCommand: string | null;
}

export interface KillTestReport {
  command: string;
  seed: number;
  epochs: number;
  backend: string;
  kills: number;
  killsSurvived: number;
  runs: number;
  runsCompleted: number;
  failures: Failure[];
  killsPerPhase: Record<string, number>;
  killsPerTarget: Record<string, number>;
  killsDuringWrite: number;
  /** Per phase, the kills with a temporary file on disk (a write in progress). */
  killsDuringWritePerPhase: Record<string, number>;
  killsBeforePipelineFile: number;
  stops: StopCheck[];
  wallSeconds: number;
  referenceSeconds: number;
  killList: KillRecord[];
}

// ---------------------------------------------------------------------------------------------
// The pipeline

/** The kill test's pipeline writes a checkpoint after every second epoch (1, 3, 5, …) and the last. */
const KILL_TEST_CHECKPOINT_EVERY = 2;

export function killTestPipeline(dataset: string, epochs: number, seed: number): object {
  return {
    name: 'kill-test',
    env: 'pendulum',
    seed,
    source: { dataset },
    stages: [
      { stage: 'dropNonFinite' },
      { stage: 'tee', name: 'clean' },
      { stage: 'dynamics', members: 3, elites: 2, hidden: [32, 32], maxEpochs: 3, workers: 1 },
      { stage: 'rollout', batch: 200, horizon: 3, lambda: 1, every: 50, retainEpochs: 2, tee: true },
      { stage: 'sac', epochs, hidden: [32, 32], batchSize: 64 },
      { stage: 'evaluate', every: 1, episodes: 2 },
    ],
    checkpointEvery: KILL_TEST_CHECKPOINT_EVERY,
  };
}

// ---------------------------------------------------------------------------------------------
// Running the CLI as a child, reading its phase lines, killing it

interface PhaseLine {
  phase: string;
  detail: string;
  atMs: number;
}

interface KillPlan {
  target: Phase;
  /** Kill at the (occurrence+1)-th start line of the target (startup: counted from the spawn). */
  occurrence: number;
  delayMs: number;
  signal: 'SIGKILL' | StopSignal;
}

type StopSignal = 'SIGINT' | 'SIGTERM';

interface AttemptResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Set when our signal was sent. */
  sent: { signal: 'SIGKILL' | StopSignal; phase: string; detail: string; atMs: number; tempFiles: string[]; epochEnds: number } | null;
  timedOut: boolean;
  lines: string[];
  phases: PhaseLine[];
  ms: number;
}

function runChild(args: string[], plan: KillPlan | null, runDir: string, o: Pick<KillTestOptions, 'attemptTimeoutMs'>): Promise<AttemptResult> {
  return new Promise((resolvePromise, reject) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, MOPO_TRACE_PHASES: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
    const lines: string[] = [];
    const phases: PhaseLine[] = [];
    let current: PhaseLine = { phase: 'startup', detail: '', atMs: 0 };
    let seen = 0;
    let epochEnds = 0;
    let sent: AttemptResult['sent'] = null;
    let timer: NodeJS.Timeout | null = null;
    let exited = false;
    let timedOut = false;
    const fire = () => {
      timer = null;
      if (exited || sent || plan === null) return;
      // This child's own temporary files (a write in progress); an earlier kill's are not swept yet at startup.
      const tempFiles = findTempFiles(runDir).filter((f) => f.includes(`.tmp-${child.pid}-`));
      sent = { signal: plan.signal, phase: current.phase, detail: current.detail, atMs: performance.now() - t0, tempFiles, epochEnds };
      child.kill(plan.signal);
    };
    if (plan && plan.target === 'startup') timer = setTimeout(fire, plan.delayMs);
    const onLine = (line: string) => {
      lines.push(line);
      const m = /^phase: (\S+)(?: (.*))?$/.exec(line);
      if (!m) return;
      current = { phase: m[1]!, detail: m[2] ?? '', atMs: performance.now() - t0 };
      phases.push(current);
      if (current.phase === 'epoch-end') epochEnds++;
      if (plan && plan.target !== 'startup' && !sent && timer === null && current.phase === plan.target) {
        if (seen++ === plan.occurrence) {
          if (plan.delayMs <= 0) fire();
          else timer = setTimeout(fire, plan.delayMs);
        }
      }
    };
    createInterface({ input: child.stderr! }).on('line', onLine);
    createInterface({ input: child.stdout! }).on('line', (l) => lines.push(`[stdout] ${l}`));
    const watchdog = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, o.attemptTimeoutMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      exited = true;
      if (timer) clearTimeout(timer);
      clearTimeout(watchdog);
      resolvePromise({ code, signal, sent, timedOut, lines, phases, ms: performance.now() - t0 });
    });
  });
}


/** Temporary files and directories (`.name.tmp-<pid>-<rand>`) under `dir`, relative to it. */
export function findTempFiles(dir: string): string[] {
  const out: string[] = [];
  walkDir(dir, (p, n) => {
    if (TEMP_FILE_NAME.test(n)) out.push(relative(dir, p));
    return true; // temporary directories are searched too
  });
  return out;
}

// ---------------------------------------------------------------------------------------------
// What a run directory holds, reduced to what must equal the reference

// Timing and the process's memory differ between any two runs; everything else must be equal.
const MEASURED_KEY = /^seconds$|Seconds$|PerSecond$|^memory$/;

/** A JSON value without measured fields (seconds, *Seconds, *PerSecond, memory) and with `runDir` written as <run>. */
export function normalize(v: unknown, runDir: string): unknown {
  if (typeof v === 'string') return v.split(runDir).join('<run>');
  if (Array.isArray(v)) return v.map((x) => normalize(x, runDir));
  if (v !== null && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) if (!MEASURED_KEY.test(k)) out[k] = normalize(x, runDir);
    return out;
  }
  return v;
}

const sha256File = (p: string) => createHash('sha256').update(readFileSync(p)).digest('hex');

interface Fingerprint {
  metrics: unknown[];
  dynamicsMetrics: unknown[];
  dynamicsReport: unknown;
  preprocessSummary: unknown;
  summary: unknown;
  ensemble: string;
  agent: string;
  state: unknown;
  stateData: string;
  /** The model buffer's rows (its shard files may group them differently: a restored buffer holds other batches). */
  modelBuffer: string;
  rounds: Record<string, string[]>;
  clean: string[];
  preprocess: string[];
  learningCurve: string;
  penaltyPlot: string;
}

function jsonLines(path: string, problems: string[], what: string): unknown[] {
  const out: unknown[] = [];
  const text = readFileSync(path, 'utf8');
  if (text.length > 0 && !text.endsWith('\n')) problems.push(`${what}: the last line is cut off (no newline)`);
  text.split('\n').forEach((l, i) => {
    if (l === '') return;
    try {
      out.push(JSON.parse(l));
    } catch {
      problems.push(`${what}: line ${i + 1} is not JSON: ${l.slice(0, 80)}`);
    }
  });
  return out;
}

const readJson = (p: string): unknown => JSON.parse(readFileSync(p, 'utf8'));

/**
 * A tensor checkpoint directory (pipeline/tensorCheckpoint.ts): the header, its data file with the
 * header's sha256 and size, and no other data file. Returns the data's sha256.
 */
function checkTensorDir(dir: string, header: string, problems: string[], runDir: string): string {
  const where = relative(runDir, dir);
  const h = readJson(join(dir, header)) as { data: { file: string; floats: number; sha256: string } };
  const data = join(dir, h.data.file);
  if (!existsSync(data)) {
    problems.push(`${where}: ${h.data.file} (named by ${header}) is missing`);
    return '';
  }
  if (statSync(data).size !== h.data.floats * 4 || sha256File(data) !== h.data.sha256) problems.push(`${where}: ${h.data.file} does not match ${header} (size or sha256)`);
  const extra = readdirSync(dir).filter((n) => n.endsWith('.f32') && n !== h.data.file);
  if (extra.length > 0) problems.push(`${where}: data files not referenced by ${header}: ${extra.join(', ')}`);
  return h.data.sha256;
}

/** A hash of a shard set's rows (each column's values in row order), whatever the batch boundaries. */
async function contentHash(dir: string): Promise<string> {
  const batches = await lastValueFrom(readShards(dir).pipe(toArray()));
  const hashes = new Map<string, ReturnType<typeof createHash>>();
  for (const b of batches) {
    for (const [name, col] of Object.entries(b.columns) as [string, ArrayBufferView | undefined][]) {
      if (col === undefined) continue;
      if (!hashes.has(name)) hashes.set(name, createHash('sha256'));
      hashes.get(name)!.update(new Uint8Array(col.buffer, col.byteOffset, col.byteLength));
    }
  }
  return createHash('sha256')
    .update([...hashes].map(([k, h]) => `${k}:${h.digest('hex')}`).join(','))
    .digest('hex');
}

/** Every shard set: complete manifest, every shard read and verified, no unlisted shard file. Returns the shards' sha256s. */
async function checkShardSet(dir: string, problems: string[], runDir: string): Promise<string[]> {
  const where = relative(runDir, dir) || '.';
  try {
    const m = await readManifest(dir);
    const batches = await lastValueFrom(readShards(dir).pipe(toArray()));
    const rows = batches.reduce((s, b) => s + b.length, 0);
    if (rows !== m.rows) problems.push(`${where}: ${rows} rows read, the manifest says ${m.rows}`);
    const listed = new Set(m.shards.map((s) => s.file));
    const extra = readdirSync(dir).filter((n) => n !== MANIFEST_FILE && !listed.has(n) && !statSync(join(dir, n)).isDirectory());
    if (extra.length > 0) problems.push(`${where}: files not in the manifest: ${extra.join(', ')}`);
    return m.shards.map((s) => s.sha256);
  } catch (e) {
    problems.push(`${where}: ${(e as Error).message}`);
    return [];
  }
}

/**
 * Checks a finished run directory's structure (problems are pushed) and returns its fingerprint for
 * the comparison with the reference.
 */
export async function inspectRun(runDir: string, epochs: number, problems: string[]): Promise<Fingerprint | null> {
  const must = [
    'pipeline.json',
    'config.json',
    'metrics.jsonl',
    'summary.json',
    'learning-curve.svg',
    'penalty.svg',
    'stages/preprocess-summary.json',
    'stages/preprocess/manifest.json',
    'stages/clean/manifest.json',
    'dynamics/config.json',
    'dynamics/metrics.jsonl',
    'dynamics/report.json',
    'dynamics/validation.svg',
    'dynamics/ensemble/ensemble.json',
    'checkpoints/latest.json',
  ];
  for (const f of must) if (!existsSync(join(runDir, f))) problems.push(`${f} is missing`);
  for (const t of findTempFiles(runDir)) problems.push(`temporary file left: ${t}`);
  const walkFor = (d: string, name: string, out: string[] = []): string[] => {
    for (const n of readdirSync(d)) {
      const p = join(d, n);
      if (n === name) out.push(relative(runDir, p));
      if (statSync(p).isDirectory()) walkFor(p, name, out);
    }
    return out;
  };
  for (const l of walkFor(runDir, 'LOCK')) problems.push(`lock left: ${l}`);
  for (const n of ['checkpoint', 'checkpoint.old', 'checkpoint.new']) if (existsSync(join(runDir, 'dynamics', n))) problems.push(`dynamics/${n} left (the ensemble's training state after the ensemble was saved)`);
  if (problems.some((p) => p.endsWith('is missing'))) return null;

  // Checkpoints: latest.json's and nothing else, at the last epoch.
  const latest = readJson(join(runDir, 'checkpoints', 'latest.json')) as { checkpoint: string; epoch: number };
  if (latest.epoch !== epochs - 1) problems.push(`checkpoints/latest.json: epoch ${latest.epoch}, expected ${epochs - 1}`);
  const others = readdirSync(join(runDir, 'checkpoints')).filter((n) => n !== 'latest.json' && n !== latest.checkpoint);
  if (others.length > 0) problems.push(`checkpoints/: entries besides latest.json and ${latest.checkpoint}: ${others.join(', ')}`);
  const cp = join(runDir, 'checkpoints', latest.checkpoint);
  if (!existsSync(join(cp, 'state.json'))) {
    problems.push(`checkpoints/${latest.checkpoint}/state.json is missing`);
    return null;
  }
  const stateData = checkTensorDir(cp, 'state.json', problems, runDir);
  const agent = checkTensorDir(join(cp, 'agent'), 'sac.json', problems, runDir);
  const ensemble = checkTensorDir(join(runDir, 'dynamics', 'ensemble'), 'ensemble.json', problems, runDir);
  await checkShardSet(join(cp, 'model-buffer'), problems, runDir);
  const modelBuffer = await contentHash(join(cp, 'model-buffer')).catch(() => '');
  const state = normalize((readJson(join(cp, 'state.json')) as { position: unknown }).position, runDir);

  // Every shard set anywhere (stages/*, rounds, the model buffer) verified; the rounds listed.
  const manifests = walkFor(runDir, MANIFEST_FILE).map((p) => dirname(join(runDir, p)));
  const shas = new Map<string, string[]>();
  for (const d of manifests) shas.set(relative(runDir, d), await checkShardSet(d, problems, runDir));
  const rounds: Record<string, string[]> = {};
  const roundRoot = join(runDir, 'stages', 'rollout');
  const roundNames = existsSync(roundRoot) ? readdirSync(roundRoot).sort() : [];
  const expected = Array.from({ length: epochs }, (_, k) => `round-${String(k).padStart(6, '0')}`);
  if (!isDeepStrictEqual(roundNames, expected)) problems.push(`stages/rollout: ${roundNames.length} entries (${roundNames.slice(0, 3).join(', ')}…), expected round-000000…round-${String(epochs - 1).padStart(6, '0')}`);
  for (const n of roundNames) rounds[n] = shas.get(join('stages', 'rollout', n)) ?? [];

  const metrics = jsonLines(join(runDir, 'metrics.jsonl'), problems, 'metrics.jsonl') as { epoch: number }[];
  const ep = metrics.map((m) => m.epoch);
  if (!isDeepStrictEqual(ep, Array.from({ length: epochs }, (_, k) => k))) problems.push(`metrics.jsonl: epochs ${JSON.stringify(ep)}, expected each of 0…${epochs - 1} once, in order`);
  const dynamicsMetrics = jsonLines(join(runDir, 'dynamics', 'metrics.jsonl'), problems, 'dynamics/metrics.jsonl');
  const summary = readJson(join(runDir, 'summary.json')) as { stoppedEarly: boolean; epochs: number };
  if (summary.stoppedEarly !== false || summary.epochs !== epochs) problems.push(`summary.json: stoppedEarly ${summary.stoppedEarly}, epochs ${summary.epochs} (expected false, ${epochs})`);
  return {
    metrics: metrics.map((m) => normalize(m, runDir)),
    dynamicsMetrics: dynamicsMetrics.map((m) => normalize(m, runDir)),
    dynamicsReport: normalize(readJson(join(runDir, 'dynamics', 'report.json')), runDir),
    preprocessSummary: normalize(readJson(join(runDir, 'stages', 'preprocess-summary.json')), runDir),
    summary: normalize({ ...(summary as object), waits: undefined }, runDir),
    ensemble,
    agent,
    state,
    stateData,
    modelBuffer,
    rounds,
    clean: shas.get(join('stages', 'clean')) ?? [],
    preprocess: shas.get(join('stages', 'preprocess')) ?? [],
    learningCurve: readFileSync(join(runDir, 'learning-curve.svg'), 'utf8'),
    penaltyPlot: readFileSync(join(runDir, 'penalty.svg'), 'utf8'),
  };
}

/** Where a run's fingerprint differs from the reference's (per epoch for the metrics). */
export function compareFingerprints(got: Fingerprint, ref: Fingerprint): string[] {
  const out: string[] = [];
  for (const k of Object.keys(ref) as (keyof Fingerprint)[]) {
    if (k === 'metrics') {
      const n = Math.max(got.metrics.length, ref.metrics.length);
      for (let i = 0; i < n; i++) {
        if (!isDeepStrictEqual(got.metrics[i], ref.metrics[i])) out.push(`metrics.jsonl line ${i + 1} differs from the reference: ${JSON.stringify(got.metrics[i])?.slice(0, 300)} vs ${JSON.stringify(ref.metrics[i])?.slice(0, 300)}`);
      }
    } else if (k === 'rounds') {
      for (const r of new Set([...Object.keys(got.rounds), ...Object.keys(ref.rounds)])) {
        if (!isDeepStrictEqual(got.rounds[r], ref.rounds[r])) out.push(`stages/rollout/${r}: shards differ from the reference`);
      }
    } else if (!isDeepStrictEqual(got[k], ref[k])) {
      out.push(`${k} differs from the reference: ${JSON.stringify(got[k])?.slice(0, 200)} vs ${JSON.stringify(ref[k])?.slice(0, 200)}`);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Aiming

interface RunState {
  hasPipeline: boolean;
  preprocessed: boolean;
  dynamicsDone: boolean;
  /** First epoch the next attempt runs (the last checkpoint's epoch + 1). */
  startEpoch: number;
}

function runState(runDir: string): RunState {
  const latest = join(runDir, 'checkpoints', 'latest.json');
  let startEpoch = 0;
  try {
    if (existsSync(latest)) startEpoch = (readJson(latest) as { epoch: number }).epoch + 1;
  } catch {
    startEpoch = 0;
  }
  let preprocessed = false;
  try {
    preprocessed = (readJson(join(runDir, 'stages', 'preprocess', MANIFEST_FILE)) as { complete: boolean }).complete && existsSync(join(runDir, 'stages', 'preprocess-summary.json'));
  } catch {
    preprocessed = false;
  }
  return {
    hasPipeline: existsSync(join(runDir, 'pipeline.json')),
    preprocessed,
    dynamicsDone: existsSync(join(runDir, 'dynamics', 'report.json')) && existsSync(join(runDir, 'dynamics', 'ensemble', 'ensemble.json')),
    startEpoch,
  };
}

/** How many times a phase still starts in an attempt from this state (0: not ahead). */
function occurrencesAhead(p: Phase, s: RunState, epochs: number, checkpointEvery: number, dynamicsEpochs: number): number {
  const left = Math.max(0, epochs - s.startEpoch);
  switch (p) {
    case 'startup':
      return 1;
    case 'preprocess':
    case 'preprocess-summary':
      return s.preprocessed ? 0 : 1;
    case 'dynamics':
    case 'dynamics-checkpoint':
      return s.dynamicsDone ? 0 : dynamicsEpochs;
    case 'dynamics-save':
      return s.dynamicsDone ? 0 : 1;
    case 'first-round':
    case 'finish':
      return 1;
    case 'round-write':
    case 'learning':
    case 'evaluate':
    case 'epoch-end':
      return left;
    case 'checkpoint': {
      let n = 0;
      for (let e = s.startEpoch; e < epochs; e++) if ((e + 1) % checkpointEvery === 0 || e === epochs - 1) n++;
      return n;
    }
  }
}

/** Per phase, how long it lasted in the reference run (median, ms): the range of the random delay. */
function phaseLengths(phases: PhaseLine[], totalMs: number): Record<string, number> {
  const by = new Map<string, number[]>();
  let prev: PhaseLine = { phase: 'startup', detail: '', atMs: 0 };
  for (const p of [...phases, { phase: 'end', detail: '', atMs: totalMs }]) {
    const list = by.get(prev.phase) ?? [];
    list.push(p.atMs - prev.atMs);
    by.set(prev.phase, list);
    prev = p;
  }
  const out: Record<string, number> = {};
  for (const [k, v] of by) {
    v.sort((a, b) => a - b);
    out[k] = v[v.length >> 1]!;
  }
  return out;
}

/** Aims at a phase still ahead, among those aimed at least often so far (so every phase gets its share). */
function planKill(rng: Rng, s: RunState, o: KillTestOptions, lengths: Record<string, number>, aimed: Map<Phase, number>): KillPlan {
  const feasible = PHASES.filter((p) => occurrencesAhead(p, s, o.epochs, KILL_TEST_CHECKPOINT_EVERY, 3) > 0);
  const least = Math.min(...feasible.map((p) => aimed.get(p) ?? 0));
  const candidates = feasible.filter((p) => (aimed.get(p) ?? 0) === least);
  const target = candidates[rng.int(candidates.length)]!;
  aimed.set(target, least + 1);
  const occurrence = rng.int(occurrencesAhead(target, s, o.epochs, KILL_TEST_CHECKPOINT_EVERY, 3));
  // A random moment inside the phase as long as it lasted in the reference (at least 1 ms wide);
  // for the short write phases that lands mid-write most of the time.
  const span = Math.max(1, Math.min(lengths[target] ?? 50, 3000));
  return { target, occurrence, delayMs: Math.floor(rng.next() * span * 1.2), signal: 'SIGKILL' };
}

// ---------------------------------------------------------------------------------------------
// The test

export async function runKillTest(o: KillTestOptions, command = 'runKillTest'): Promise<KillTestReport> {
  const tStart = performance.now();
  const out = resolve(o.out);
  rmSync(out, { recursive: true, force: true });
  mkdirSync(join(out, 'logs'), { recursive: true });
  const rng = new Rng(o.seed, 'kill-test');
  const dataset = join(out, 'pendulum.parquet');
  await writeTransitionsFile(dataset, pendulumRandomDataset({ steps: 3000, seed: o.seed }));
  // Not named pipeline.json: the workspace is not itself a run (mopo runs ls would list it).
  const pipelineFile = join(out, 'kill-test.pipeline.json');
  writeFileSync(pipelineFile, JSON.stringify(killTestPipeline(dataset, o.epochs, o.seed), null, 2) + '\n');
  const backendArgs = ['--backend', o.backend];
  const freshArgs = (dir: string) => ['run', pipelineFile, '--out', dir, ...backendArgs];
  const resumeArgs = (dir: string) => ['run', '--resume', dir, ...backendArgs];
  const saveLog = (name: string, r: AttemptResult) => writeFileSync(join(out, 'logs', `${name}.log`), r.lines.join('\n') + '\n');
  const tail = (r: AttemptResult) => r.lines.filter((l) => !l.startsWith('phase: ')).slice(-15);

  // 1. The reference: one uninterrupted run.
  o.log(`kill test: reference run (${o.epochs} epochs) in ${join(out, 'reference')}`);
  const refDir = join(out, 'reference');
  const refRun = await runChild(freshArgs(refDir), null, refDir, o);
  saveLog('reference', refRun);
  if (refRun.code !== 0) throw new Error(`the reference run failed (exit ${refRun.code}, signal ${refRun.signal}):\n${tail(refRun).join('\n')}`);
  const refProblems: string[] = [];
  const ref = await inspectRun(refDir, o.epochs, refProblems);
  if (ref === null || refProblems.length > 0) throw new Error(`the reference run directory is not valid: ${refProblems.join('; ')}`);
  const lengths = phaseLengths(refRun.phases, refRun.ms);
  o.log(`kill test: reference done in ${(refRun.ms / 1000).toFixed(1)} s; phase lengths (ms, median): ${JSON.stringify(Object.fromEntries(Object.entries(lengths).map(([k, v]) => [k, Math.round(v)])))}`);

  const failures: Failure[] = [];
  const killList: KillRecord[] = [];
  let survived = 0;
  let runs = 0;
  let completed = 0;
  const aimed = new Map<Phase, number>();

  // 2. Killed runs, until enough kills.
  while (killList.length < o.kills) {
    const run = runs++;
    const runDir = join(out, 'runs', `run-${String(run).padStart(3, '0')}`);
    const planned = 1 + rng.int(Math.max(1, Math.min(o.maxKillsPerRun, o.kills - killList.length)));
    const runKills: KillRecord[] = [];
    let failed = false;
    for (let attempt = 0; ; attempt++) {
      const s = runState(runDir);
      const args = s.hasPipeline ? resumeArgs(runDir) : freshArgs(runDir);
      const plan = runKills.length < planned ? planKill(rng, s, o, lengths, aimed) : null;
      const r = await runChild(args, plan, runDir, o);
      saveLog(`run-${String(run).padStart(3, '0')}-attempt-${String(attempt).padStart(2, '0')}`, r);
      if (r.timedOut) {
        failures.push({ run, attempt, what: `timed out after ${o.attemptTimeoutMs} ms (${args.join(' ')})`, problems: [], logTail: tail(r) });
        failed = true;
        break;
      }
      if (r.sent && r.signal === 'SIGKILL') {
        const k: KillRecord = {
          run,
          attempt,
          target: plan!.target,
          occurrence: plan!.occurrence,
          delayMs: plan!.delayMs,
          phase: r.sent.phase,
          detail: r.sent.detail,
          atMs: Math.round(r.sent.atMs),
          tempFiles: r.sent.tempFiles,
          beforePipelineFile: !existsSync(join(runDir, 'pipeline.json')),
        };
        runKills.push(k);
        killList.push(k);
        o.log(`  run ${run} attempt ${attempt}: killed in ${k.phase}${k.detail ? ' ' + k.detail : ''} at ${k.atMs} ms (aimed: ${k.target} #${k.occurrence} +${k.delayMs} ms)${k.tempFiles.length ? `, writing ${k.tempFiles.join(', ')}` : ''}${k.beforePipelineFile ? ', before pipeline.json: starting over' : ''}`);
        if (attempt > 3 * o.maxKillsPerRun + 5) {
          failures.push({ run, attempt, what: 'too many attempts', problems: [], logTail: tail(r) });
          failed = true;
          break;
        }
        continue;
      }
      if (r.code !== 0) {
        failures.push({ run, attempt, what: `${args.join(' ')} ended with exit code ${r.code}${r.signal ? `, signal ${r.signal}` : ''} (not killed by the test)`, problems: [], logTail: tail(r) });
        failed = true;
        o.log(`  run ${run} attempt ${attempt}: FAILED, exit ${r.code}: ${tail(r).slice(-3).join(' | ')}`);
        break;
      }
      // Completed: the run directory must be whole and equal the reference.
      const problems: string[] = [];
      const fp = await inspectRun(runDir, o.epochs, problems);
      if (fp) problems.push(...compareFingerprints(fp, ref));
      if (problems.length > 0) {
        failures.push({ run, attempt, what: `the completed run directory ${runDir} is not valid or differs from the reference`, problems, logTail: tail(r) });
        failed = true;
        o.log(`  run ${run}: INVALID after ${runKills.length} kills: ${problems.slice(0, 5).join('; ')}`);
      } else {
        if (plan) o.log(`  run ${run} attempt ${attempt}: finished before the aimed kill (${plan.target} #${plan.occurrence} +${plan.delayMs} ms)`);
        o.log(`  run ${run}: completed after ${runKills.length} kills, equal to the reference`);
      }
      break;
    }
    if (!failed) {
      completed++;
      survived += runKills.length;
      rmSync(runDir, { recursive: true, force: true }); // keep failed runs for inspection only
    }
  }

  // 3. SIGINT and SIGTERM: a clean stop with a checkpoint and the resume command, then the same result.
  const stops: StopCheck[] = [];
  if (o.stopChecks.length > 0) {
    const learningMs = Math.max(1, lengths['learning'] ?? 50);
    // Mid-learning: any epoch from the third on. At an epoch's end: an epoch without a scheduled
    // checkpoint (even), right after its metrics line, while its plots are written.
    const midLearning = () => ({ target: 'learning' as Phase, delay: Math.floor(rng.next() * learningMs), occurrence: 2 + rng.int(Math.max(1, o.epochs - 4)) });
    const aims: { name: StopCheckName; signal: StopSignal; target: Phase; delay: number; occurrence: number }[] = [];
    if (o.stopChecks.includes('sigint-mid-learning')) aims.push({ name: 'sigint-mid-learning', signal: 'SIGINT', ...midLearning() });
    if (o.stopChecks.includes('sigint-at-epoch-end')) aims.push({ name: 'sigint-at-epoch-end', signal: 'SIGINT', target: 'epoch-end', delay: 0, occurrence: 2 * (1 + rng.int(Math.max(1, Math.floor((o.epochs - 4) / 2)))) });
    if (o.stopChecks.includes('sigterm-mid-learning')) aims.push({ name: 'sigterm-mid-learning', signal: 'SIGTERM', ...midLearning() });
    // While a scheduled checkpoint (not the last epoch's) is written: the run stops after that epoch.
    if (o.stopChecks.includes('sigterm-at-checkpoint')) aims.push({ name: 'sigterm-at-checkpoint', signal: 'SIGTERM', target: 'checkpoint', delay: 0, occurrence: rng.int(Math.max(1, Math.floor((o.epochs - 1) / KILL_TEST_CHECKPOINT_EVERY))) });
    for (const aim of aims) {
      const runDir = join(out, 'runs', aim.name);
      const occurrence = aim.occurrence;
      const check = await stopCheck(runDir, freshArgs(runDir), backendArgs, { target: aim.target, occurrence, delayMs: aim.delay, signal: aim.signal }, o, ref, (n, r) => saveLog(n, r));
      stops.push({ name: aim.name, ...check });
      o.log(`  ${aim.name}: ${check.ok ? 'ok' : 'FAILED'} (exit ${check.exitCode}, stopped after epoch ${check.stoppedAfterEpoch}, checkpoint epoch ${check.checkpointEpoch}; resumed with: ${check.resumeCommand})${check.ok ? '' : ': ' + check.problems.join('; ')}`);
      if (check.ok) rmSync(runDir, { recursive: true, force: true });
      else failures.push({ run: aim.name, attempt: 0, what: `${aim.signal} check`, problems: check.problems, logTail: [] });
    }
  }

  const count = (key: (k: KillRecord) => string) =>
    killList.reduce<Record<string, number>>((acc, k) => {
      const name = key(k);
      if (name !== '') acc[name] = (acc[name] ?? 0) + 1;
      return acc;
    }, {});
  const report: KillTestReport = {
    command,
    seed: o.seed,
    epochs: o.epochs,
    backend: o.backend,
    kills: killList.length,
    killsSurvived: survived,
    runs,
    runsCompleted: completed,
    failures,
    killsPerPhase: count((k) => k.phase),
    killsPerTarget: count((k) => k.target),
    killsDuringWrite: killList.filter((k) => k.tempFiles.length > 0).length,
    killsDuringWritePerPhase: count((k) => (k.tempFiles.length > 0 ? k.phase : '')),
    killsBeforePipelineFile: killList.filter((k) => k.beforePipelineFile).length,
    stops,
    wallSeconds: Math.round((performance.now() - tStart) / 100) / 10,
    referenceSeconds: Math.round(refRun.ms / 100) / 10,
    killList,
  };
  writeFileSync(join(out, 'report.json'), JSON.stringify(report, null, 2) + '\n');
  return report;
}

async function stopCheck(
  runDir: string,
  args: string[],
  backendArgs: string[],
  plan: KillPlan & { signal: StopSignal },
  o: KillTestOptions,
  ref: Fingerprint,
  saveLog: (name: string, r: AttemptResult) => void,
): Promise<Omit<StopCheck, 'name'>> {
  const problems: string[] = [];
  const name = runDir.split('/').pop()!;
  const r = await runChild(args, plan, runDir, o);
  saveLog(`${name}-interrupted`, r);
  const sig = plan.signal;
  const res: Omit<StopCheck, 'name'> = { ok: false, problems, exitCode: r.code, stoppedAfterEpoch: null, checkpointEpoch: null, resumeCommand: null };
  if (!r.sent) {
    problems.push(`the ${sig} was never sent (the run ended first, exit ${r.code})`);
    return res;
  }
  if (r.code !== 130) problems.push(`exit code ${r.code}${r.signal ? ` (signal ${r.signal})` : ''} after ${sig}, expected 130`);
  const text = r.lines.join('\n');
  const stopped = /stopped after epoch (\d+)/.exec(text);
  res.stoppedAfterEpoch = stopped ? Number(stopped[1]) : null;
  if (!stopped) problems.push('stderr does not say after which epoch the run stopped');
  const cmd = /continue with: (mopo (\S+) --resume (\S+))/.exec(text);
  res.resumeCommand = cmd ? cmd[1]! : null;
  if (!cmd) problems.push('stderr does not give the resume command (continue with: mopo … --resume <dir>)');
  else if (resolve(cmd[3]!) !== resolve(runDir)) problems.push(`the resume command names ${cmd[3]}, not the run directory ${runDir}`);
  if (!/checkpoints\/epoch-\d+/.test(text.split('interrupted')[1] ?? '')) problems.push('stderr does not name the checkpoint it wrote (checkpoints/epoch-N)');
  for (const t of findTempFiles(runDir)) problems.push(`temporary file left after ${sig}: ${t}`);
  if (existsSync(join(runDir, 'LOCK'))) problems.push(`LOCK left after ${sig}`);
  const latestPath = join(runDir, 'checkpoints', 'latest.json');
  if (!existsSync(latestPath)) problems.push(`no checkpoint after ${sig}`);
  else {
    const latest = readJson(latestPath) as { epoch: number };
    res.checkpointEpoch = latest.epoch;
    const lines = readFileSync(join(runDir, 'metrics.jsonl'), 'utf8').trim().split('\n');
    const lastEpoch = (JSON.parse(lines[lines.length - 1]!) as { epoch: number }).epoch;
    if (latest.epoch !== lastEpoch) problems.push(`the checkpoint is at epoch ${latest.epoch} but metrics.jsonl ends at epoch ${lastEpoch}: the stop did not checkpoint the epoch it ended at`);
    if (res.stoppedAfterEpoch !== null && res.stoppedAfterEpoch !== latest.epoch) problems.push(`stderr says stopped after epoch ${res.stoppedAfterEpoch}, the checkpoint is at epoch ${latest.epoch}`);
    // The stop comes at the end of the epoch the signal came in (or the next, if it came after that
    // epoch's check). A signal seen while the epoch before was still ending (its end line printed, its
    // scheduled checkpoint being written) stops the run after that epoch: its checkpoint exists.
    const inEpoch = r.sent.epochEnds;
    const earliest = inEpoch > 0 && inEpoch % KILL_TEST_CHECKPOINT_EVERY === 0 ? inEpoch - 1 : inEpoch;
    if (latest.epoch < earliest || latest.epoch > inEpoch + 2) problems.push(`${sig} during epoch ${inEpoch}, but the checkpoint is at epoch ${latest.epoch}`);
    const others = readdirSync(join(runDir, 'checkpoints')).filter((n) => n !== 'latest.json' && n !== `epoch-${String(latest.epoch).padStart(6, '0')}`);
    if (others.length > 0) problems.push(`checkpoints/ holds more than the latest: ${others.join(', ')}`);
  }
  if (cmd) {
    // The printed command, as printed (mopo = the CLI).
    const parts = cmd[1]!.split(' ').slice(1);
    const again = await runChild([...parts, ...backendArgs], null, runDir, o);
    saveLog(`${name}-resumed`, again);
    if (again.code !== 0) problems.push(`the resume command ended with exit ${again.code}: ${again.lines.filter((l) => !l.startsWith('phase: ')).slice(-3).join(' | ')}`);
    else {
      const fp = await inspectRun(runDir, o.epochs, problems);
      if (fp) problems.push(...compareFingerprints(fp, ref));
    }
  }
  res.ok = problems.length === 0;
  return res;
}

// ---------------------------------------------------------------------------------------------
// CLI

function parseArgs(argv: string[]): Omit<KillTestOptions, 'log'> & { quiet: boolean } {
  const o = { ...KILL_TEST_DEFAULTS, quiet: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const val = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    const int = () => {
      const v = Number(val());
      if (!Number.isInteger(v) || v < 0) throw new Error(`${a} expects a non-negative integer`);
      return v;
    };
    switch (a) {
      case '--kills':
        o.kills = int();
        break;
      case '--seed':
        o.seed = int();
        break;
      case '--out':
        o.out = val();
        break;
      case '--epochs':
        o.epochs = Math.max(4, int());
        break;
      case '--max-kills-per-run':
        o.maxKillsPerRun = Math.max(1, int());
        break;
      case '--no-stop-checks':
        o.stopChecks = [];
        break;
      case '--backend':
        o.backend = val();
        break;
      case '--attempt-timeout':
        o.attemptTimeoutMs = int() * 1000;
        break;
      case '--quiet':
        o.quiet = true;
        break;
      case '--help':
        process.stdout.write('node dist/scripts/killTest.js --kills 50 --seed 1 [--out runs/kill-test] [--epochs 20] [--max-kills-per-run 5] [--no-stop-checks] [--backend wasm] [--attempt-timeout <s>] [--quiet]\n');
        process.exit(0);
      // falls through (exit)
      default:
        throw new Error(`unknown argument ${a} (see --help)`);
    }
  }
  return o;
}

async function main(): Promise<void> {
  let opts: ReturnType<typeof parseArgs>;
  try {
    opts = parseArgs(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`killTest: ${(e as Error).message}\n`);
    process.exit(2);
  }
  const { quiet, ...rest } = opts;
  const log = quiet ? () => {} : (m: string) => process.stderr.write(m + '\n');
  const command = `node dist/scripts/killTest.js ${process.argv.slice(2).join(' ')}`.trim();
  const report = await runKillTest({ ...rest, log }, command);
  for (const f of report.failures) {
    process.stderr.write(`FAILURE (run ${f.run}, attempt ${f.attempt}): ${f.what}\n${f.problems.map((p) => '  ' + p).join('\n')}${f.logTail.length ? '\n  log: ' + f.logTail.join('\n       ') : ''}\n`);
  }
  log(`kills per phase: ${JSON.stringify(report.killsPerPhase)}; during a write: ${report.killsDuringWrite} ${JSON.stringify(report.killsDuringWritePerPhase)}; before pipeline.json: ${report.killsBeforePipelineFile}; stop checks: ${report.stops.map((s) => `${s.name} ${s.ok ? 'ok' : 'FAILED'}`).join(', ') || 'skipped'}; ${report.wallSeconds} s; report ${join(resolve(rest.out), 'report.json')}`);
  process.stdout.write(`kill test: ${report.killsSurvived} kills survived in ${report.runs} runs, ${report.failures.length} failures\n`);
  process.exitCode = report.failures.length > 0 ? 1 : 0;
}

if (isMain(import.meta.url)) {
  main().catch((e) => {
    process.stderr.write(`killTest: ${(e as Error).stack ?? String(e)}\n`);
    process.exit(1);
  });
}
