// readTransitions: a cold Observable of TransitionBatches read from a Parquet file, one row group
// at a time (each subscription opens and reads the file again, so an epoch is a re-subscription).
//
// Decoding is arrow-rs (parquet-wasm) on self-contained row-group files built by
// pipeline/parquet.ts; the Arrow columns are then viewed (float32 with regular list offsets: zero
// copy) or converted (float64 → float32, one scalar column per dimension → row-major) into the
// project's TransitionBatch. docs/parquet.md has the formats, the measurements and the rules below.
//
// Layouts:
//  - transitions: one transition a row. Vectors as list<float|double>, fixed_size_list, or one
//    scalar column per dimension (obs_0 … obs_16, observations_0 …, next_obs_0 …, action_0/act_0 …).
//    Names: D4RL plural (observations, actions, next_observations, rewards, terminals, timeouts),
//    singular (observation, …), done/dones for terminal, plus the aliases in NAMES below.
//    Without a next_observation column, next_observation is the following row's observation within
//    the same episode (episodes end where the episode id changes or after a terminal/timeout/done
//    row); the last row of every episode has no next observation in the file and is dropped, and
//    the transition before it, now the last of its episode, gets timeout = 1.
//  - trajectories: one episode a row, columns are lists over the steps. With T rewards,
//    observations may hold T+1 entries (the last is the final next_observation: T transitions) or
//    T entries (then next_observations is used if present, else the last step is dropped: T−1
//    transitions). The last transition of an episode that is not terminal gets timeout = 1.
//    Emitted batches carry episode (the file's episode id column, else the file row) and step.
import { Observable } from 'rxjs';
import { DataType, type Data, type Field, type RecordBatch, type Schema } from 'apache-arrow';
import { TransitionBatch, type OptionalColumn, type TransitionColumns, type TransitionDims } from '../schemas/transition.js';
import { UserError } from '../pipeline/errors.js';
import { ParquetSource, closestNames } from '../pipeline/parquet.js';

export type Role = 'observation' | 'action' | 'reward' | 'next_observation' | 'terminal' | 'timeout' | 'episode' | 'step';
export const ROLES: readonly Role[] = ['observation', 'action', 'reward', 'next_observation', 'terminal', 'timeout', 'episode', 'step'];

/** Our role → the file's column name, or the per-dimension column names (or their common prefix). */
export type ColumnMapping = Partial<Record<Role, string | string[]>>;

export type Layout = 'transitions' | 'trajectories';

export interface ReadOptions {
  /** Most transitions per emitted batch (default 65536). */
  batchSize?: number;
  /** Overrides auto-detection of column names. */
  columns?: ColumnMapping;
  /** Transition range [start, end) to read (after any trajectory expansion / next-obs derivation). */
  rows?: { start?: number; end?: number };
  layout?: 'auto' | Layout;
  /** Environment name for the batches' dims (default: the file's metadata "env"). */
  env?: string;
  /** Vector sizes, needed only for trajectory files whose observations/actions are flattened lists. */
  obsDim?: number;
  actDim?: number;
  /** Let NaN/±Infinity (and nulls, read as NaN) through instead of failing (default false). */
  allowNonFinite?: boolean;
  /** Receives notes about defaults applied (missing terminal/timeout columns, dropped rows, …). */
  onWarning?: (message: string) => void;
}

/** How one of our vector columns is stored. */
export interface VectorColumn {
  /** 'list': one list/fixed-size-list column; 'split': one scalar column per dimension; 'scalar': one scalar column (dim 1). */
  kind: 'list' | 'split' | 'scalar';
  columns: string[];
  dim: number;
}

export interface ReadPlan {
  layout: Layout;
  observation: VectorColumn;
  action: VectorColumn;
  nextObservation: VectorColumn | undefined;
  reward: string;
  terminal: string | undefined;
  timeout: string | undefined;
  episode: string | undefined;
  step: string | undefined;
  rawReward: string | undefined;
  penalty: string | undefined;
  dims: TransitionDims;
  /** Transitions layout without a next_observation column. */
  deriveNext: boolean;
  /** File columns to read. */
  columns: string[];
  warnings: string[];
}

export interface ParquetInfo {
  path: string;
  bytes: number;
  layout: Layout;
  /** Role → file column(s) used. */
  columns: Partial<Record<Role, string | string[]>>;
  plan: ReadPlan;
  dims: TransitionDims;
  /** Rows in the file (transitions, or episodes for the trajectory layout). */
  rows: number;
  /** Transitions the file yields, when known without reading the data. */
  transitions: number | undefined;
  rowGroups: Array<{ index: number; rows: number; firstRow: number; compressedBytes: number; uncompressedBytes: number }>;
  /** Arrow view of the file's schema. */
  schema: Array<{ name: string; type: string; nullable: boolean }>;
  /** Parquet physical storage of each leaf column (from row group 0). */
  storage: Array<{ column: string; physicalType: string; codec: string; encodings: string[] }>;
  metadata: Record<string, string>;
  createdBy: string | undefined;
  warnings: string[];
}

export const DEFAULT_BATCH_SIZE = 65536;

// ---------------------------------------------------------------------------------------------
// Column names

const NAMES: Record<Role, { exact: string[]; prefixes: string[] }> = {
  observation: { exact: ['observations', 'observation', 'obs', 'states', 'state'], prefixes: ['observations', 'observation', 'obs', 'states', 'state'] },
  action: { exact: ['actions', 'action', 'act', 'acts'], prefixes: ['actions', 'action', 'act', 'acts'] },
  reward: { exact: ['rewards', 'reward', 'rew', 'rews'], prefixes: [] },
  next_observation: {
    exact: ['next_observations', 'next_observation', 'next_obs', 'next_states', 'next_state', 'new_observations', 'new_obs', 'obs_next', 'observations_next', 'obs_tp1'],
    prefixes: ['next_observations', 'next_observation', 'next_obs', 'next_states', 'next_state', 'new_obs', 'obs_next'],
  },
  terminal: { exact: ['terminals', 'terminal', 'terminated', 'terminations', 'is_terminal', 'dones', 'done'], prefixes: [] },
  timeout: { exact: ['timeouts', 'timeout', 'truncated', 'truncations', 'time_limits'], prefixes: [] },
  episode: { exact: ['episode', 'episodes', 'episode_id', 'episode_ids', 'episode_index', 'episode_idx', 'trajectory_id', 'traj_id'], prefixes: [] },
  step: { exact: ['step', 'steps', 'timestep', 'timesteps', 'step_id', 'step_index', 'frame_index', 't'], prefixes: [] },
};

const OPTIONS_HINT = 'readTransitions option columns (CLI --columns)';

function splitMatch(names: readonly string[], prefix: string): string[] | undefined {
  const re = new RegExp(`^${prefix.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}[_.-]?(\\d+)$`, 'i');
  const found = new Map<number, string>();
  for (const n of names) {
    const m = re.exec(n);
    if (m) found.set(Number(m[1]), n);
  }
  if (found.size === 0) return undefined;
  const idx = [...found.keys()].sort((a, b) => a - b);
  const first = idx[0]!;
  if (first !== 0 && first !== 1) return undefined;
  const out: string[] = [];
  for (let i = first; found.has(i); i++) out.push(found.get(i)!);
  return out.length === found.size ? out : undefined;
}

function splitGaps(names: readonly string[], prefix: string): string | undefined {
  const re = new RegExp(`^${prefix.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}[_.-]?(\\d+)$`, 'i');
  const idx = names.map((n) => re.exec(n)).filter((m): m is RegExpExecArray => !!m).map((m) => Number(m[1])).sort((a, b) => a - b);
  if (idx.length === 0) return undefined;
  const missing: number[] = [];
  for (let i = idx[0]! > 1 ? 0 : idx[0]!, k = 0; i <= idx[idx.length - 1]!; i++) {
    if (idx[k] === i) k++;
    else missing.push(i);
  }
  return missing.length ? `per-dimension columns ${prefix}_<i> are missing index${missing.length > 1 ? 'es' : ''} ${missing.slice(0, 8).join(', ')}` : undefined;
}

// ---------------------------------------------------------------------------------------------
// Planning: which columns, which layout, which dims

interface Located {
  kind: 'column' | 'split';
  columns: string[];
}

function fieldTypeText(f: Field | undefined): string {
  return f ? String(f.type) : '?';
}

function isListType(t: DataType): boolean {
  return DataType.isList(t) || DataType.isLargeList(t) || DataType.isFixedSizeList(t);
}
function isNumericType(t: DataType): boolean {
  return DataType.isFloat(t) || DataType.isInt(t) || DataType.isBool(t);
}
function listChild(t: DataType): DataType | undefined {
  return isListType(t) ? (t as unknown as { children: Field[] }).children[0]?.type : undefined;
}

class Planner {
  readonly names: string[];
  private readonly byLower = new Map<string, string>();
  readonly fields = new Map<string, Field>();
  readonly warnings: string[] = [];
  readonly meta: Map<string, string>;

  constructor(
    readonly source: ParquetSource,
    readonly options: ReadOptions,
  ) {
    const schema: Schema = source.schema;
    this.names = schema.fields.map((f) => f.name);
    for (const f of schema.fields) {
      this.fields.set(f.name, f);
      if (!this.byLower.has(f.name.toLowerCase())) this.byLower.set(f.name.toLowerCase(), f.name);
    }
    this.meta = new Map([...schema.metadata, ...[...source.footer.keyValue].filter(([k]) => k !== 'ARROW:schema')]);
  }

  get path(): string {
    return this.source.path;
  }

  /** Finds a role's column(s): the user's mapping first, then the known names. */
  locate(role: Role): Located | undefined {
    const given = this.options.columns?.[role];
    if (given !== undefined) return this.locateGiven(role, given);
    for (const n of NAMES[role].exact) {
      const hit = this.byLower.get(n);
      if (hit) return { kind: 'column', columns: [hit] };
    }
    for (const p of NAMES[role].prefixes) {
      const cols = splitMatch(this.names, p);
      if (cols) return { kind: 'split', columns: cols };
    }
    return undefined;
  }

  private locateGiven(role: Role, given: string | string[]): Located {
    if (Array.isArray(given)) {
      const missing = given.filter((c) => !this.fields.has(c));
      if (missing.length) throw this.notFound(role, missing, `the columns given for ${role} (${OPTIONS_HINT})`);
      return { kind: given.length === 1 ? 'column' : 'split', columns: given };
    }
    if (this.fields.has(given)) return { kind: 'column', columns: [given] };
    const split = splitMatch(this.names, given.replace(/[_.-]$/, ''));
    if (split) return { kind: 'split', columns: split };
    throw this.notFound(role, [given], `the column given for ${role} (${OPTIONS_HINT})`);
  }

  notFound(role: Role, wanted: string[], what: string): UserError {
    const near = closestNames(wanted, this.names);
    const nearText = near.length ? ` Closest names in the file: ${near.map((n) => `'${n}'`).join(', ')}.` : '';
    return new UserError(`${this.path}: ${what} ${wanted.map((w) => `'${w}'`).join(', ')} not found.${nearText} The file's columns are: ${this.columnList()}.`);
  }

  missing(role: Role, extra = ''): UserError {
    const wanted = [...NAMES[role].exact, ...NAMES[role].prefixes.map((p) => `${p}_0`)];
    // columns another role already claims are no suggestion for this one
    const claimed = new Set<string>();
    for (const other of ROLES) {
      if (other === role) continue;
      try {
        for (const c of this.locate(other)?.columns ?? []) claimed.add(c);
      } catch {
        /* a bad mapping for another role is reported on its own */
      }
    }
    const near = closestNames(wanted, this.names.filter((n) => !claimed.has(n)));
    const gap = NAMES[role].prefixes.map((p) => splitGaps(this.names, p)).find((x) => x);
    const nearText = near.length ? ` Closest names in the file: ${dedupeSplit(near).map((n) => `'${n}'`).join(', ')} — if one of them is the ${role} column, pass it with ${OPTIONS_HINT}, e.g. columns: { ${role}: '${near[0]!.replace(/[_.-]?\d+$/, '')}' }.` : ` Name it with ${OPTIONS_HINT}.`;
    return new UserError(
      `${this.path}: no ${role} column found${extra}. Looked for ${NAMES[role].exact.map((n) => `'${n}'`).join(', ')}${NAMES[role].prefixes.length ? ` and per-dimension columns ${NAMES[role].prefixes.map((p) => `'${p}_0'…`).join(', ')}` : ''}${gap ? ` (${gap})` : ''}.${nearText} The file's columns are: ${this.columnList()}.`,
    );
  }

  columnList(): string {
    // a column name may be any string: long ones are shortened so the message stays a paragraph
    const shown = dedupeSplit(this.names).map((n) => (n.length > 80 ? `${n.slice(0, 80)}…` : n));
    return shown.length > 40 ? `${shown.slice(0, 40).join(', ')}, … (${shown.length} in all)` : shown.join(', ');
  }

  type(col: string): DataType {
    return this.fields.get(col)!.type;
  }

  metaDim(key: 'obsDim' | 'actDim'): number | undefined {
    const v = this.meta.get(key);
    const n = v === undefined ? NaN : Number(v);
    return Number.isInteger(n) && n > 0 ? n : undefined;
  }
}

/** obs_0, obs_1, … obs_16 → obs_0…obs_16 for messages. */
function dedupeSplit(names: readonly string[]): string[] {
  const groups = new Map<string, number[]>();
  const order: string[] = [];
  for (const n of names) {
    const m = /^(.*?)([_.-]?)(\d+)$/.exec(n);
    const key = m ? `${m[1]}${m[2]}` : n;
    if (!groups.has(key)) {
      groups.set(key, []);
      order.push(key);
    }
    groups.get(key)!.push(m ? Number(m[3]) : -1);
  }
  return order.map((k) => {
    const idx = groups.get(k)!;
    if (idx.length < 3 || idx.includes(-1)) return idx.map((i) => (i === -1 ? k : `${k}${i}`)).join(', ');
    return `${k}${Math.min(...idx)}…${k}${Math.max(...idx)}`;
  });
}

/** Decides layout, columns and dims; may read the first row to learn list lengths. */
export async function planRead(source: ParquetSource, options: ReadOptions = {}): Promise<ReadPlan> {
  const p = new Planner(source, options);
  const path = source.path;
  const reward = p.locate('reward');
  if (!reward) throw p.missing('reward');
  if (reward.kind !== 'column') throw new UserError(`${path}: reward must be one column, found per-dimension columns ${reward.columns.join(', ')}.`);
  const rewardCol = reward.columns[0]!;
  const rewardType = p.type(rewardCol);
  let layout: Layout;
  if (options.layout === 'transitions' || options.layout === 'trajectories') layout = options.layout;
  else if (options.layout === undefined || options.layout === 'auto') layout = isListType(rewardType) ? 'trajectories' : 'transitions';
  else throw new UserError(`${path}: unknown layout '${String(options.layout)}'; use 'auto', 'transitions' or 'trajectories'.`);

  if (layout === 'transitions' && !isNumericType(rewardType)) {
    throw new UserError(`${path}: column ${rewardCol} (reward) has type ${rewardType}, expected a number per row${isListType(rewardType) ? ' (a list per row means one episode a row: use layout "trajectories")' : ''}.`);
  }
  if (layout === 'trajectories' && !(isListType(rewardType) && isNumericType(listChild(rewardType)!))) {
    throw new UserError(`${path}: layout "trajectories" needs ${rewardCol} (reward) to be a list of numbers per episode row, but it has type ${rewardType}.`);
  }

  const obs = p.locate('observation');
  if (!obs) throw p.missing('observation');
  const act = p.locate('action');
  if (!act) throw p.missing('action');
  const next = p.locate('next_observation');
  const terminal = p.locate('terminal');
  const timeout = p.locate('timeout');
  const episode = p.locate('episode');
  const step = layout === 'transitions' ? p.locate('step') : undefined;
  const single = (role: Role, l: Located | undefined): string | undefined => {
    if (!l) return undefined;
    if (l.kind !== 'column') throw new UserError(`${path}: ${role} must be one column, found ${l.columns.join(', ')}.`);
    const col = l.columns[0]!;
    const t = p.type(col);
    const ok = layout === 'trajectories' && role !== 'episode' ? isListType(t) && isNumericType(listChild(t)!) : isNumericType(t);
    if (!ok) {
      if (role === 'episode' || role === 'step') {
        p.warnings.push(`${path}: column ${col} (${role}) has type ${t}, not integers; it is ignored.`);
        return undefined;
      }
      throw new UserError(`${path}: column ${col} (${role}) has type ${t}, expected ${layout === 'trajectories' ? 'a list of booleans or numbers per episode' : 'a boolean or number per row'}.`);
    }
    return col;
  };
  const terminalCol = single('terminal', terminal);
  const timeoutCol = single('timeout', timeout);
  const episodeCol = single('episode', episode);
  const stepCol = single('step', step);
  if (terminalCol && /^dones?$/i.test(terminalCol)) {
    p.warnings.push(`${path}: column ${terminalCol} is read as terminal (the episode ended by termination)${timeoutCol ? '' : '; time-limit ends cannot be told apart without a timeouts column'}.`);
  }
  if (!terminalCol) p.warnings.push(`${path}: no terminal column (looked for ${NAMES.terminal.exact.join(', ')}): terminal = 0 for every transition.`);
  if (!timeoutCol && layout === 'transitions') p.warnings.push(`${path}: no timeout column (looked for ${NAMES.timeout.exact.join(', ')}): timeout = 0 for every transition.`);

  const metaObs = p.metaDim('obsDim');
  const metaAct = p.metaDim('actDim');
  const peek = new Peek(source);
  const vec = async (role: Role, l: Located, hint: number | undefined): Promise<VectorColumn> => {
    if (l.kind === 'split') {
      for (const c of l.columns) {
        const t = p.type(c);
        const okT = layout === 'transitions' ? isNumericType(t) && !DataType.isBool(t) : isListType(t) && DataType.isFloat(listChild(t)!);
        if (!okT) throw new UserError(`${path}: column ${c} (${role}, per-dimension) has type ${t}, expected ${layout === 'transitions' ? 'a number' : 'a list of numbers'}.`);
      }
      if (layout === 'trajectories') throw new UserError(`${path}: per-dimension ${role} columns (${l.columns[0]}…) are not supported in the trajectory layout; store ${role} as a list of vectors per episode.`);
      return { kind: 'split', columns: l.columns, dim: l.columns.length };
    }
    const col = l.columns[0]!;
    const t = p.type(col);
    if (layout === 'transitions') {
      if (isNumericType(t) && !DataType.isBool(t)) return { kind: 'scalar', columns: [col], dim: 1 };
      const inner = listChild(t);
      if (!inner || !(DataType.isFloat(inner) || DataType.isInt(inner))) {
        throw new UserError(`${path}: column ${col} (${role}) has type ${t}; expected a list or fixed-size list of floats per row, or one float column per dimension.`);
      }
      if (DataType.isFixedSizeList(t)) return { kind: 'list', columns: [col], dim: t.listSize };
      const dim = await peek.listLength(col, role);
      return { kind: 'list', columns: [col], dim };
    }
    // trajectories: list<list<num>> | list<fixed_size_list<num>> | list<num> (flattened)
    const inner = listChild(t);
    if (!inner) throw new UserError(`${path}: column ${col} (${role}) has type ${t}; the trajectory layout needs a list of vectors per episode.`);
    if (isListType(inner)) {
      const leaf = listChild(inner)!;
      if (!(DataType.isFloat(leaf) || DataType.isInt(leaf))) throw new UserError(`${path}: column ${col} (${role}) has type ${t}; expected lists of float vectors.`);
      if (DataType.isFixedSizeList(inner)) return { kind: 'list', columns: [col], dim: inner.listSize };
      return { kind: 'list', columns: [col], dim: await peek.innerLength(col, role) };
    }
    if (!(DataType.isFloat(inner) || DataType.isInt(inner))) throw new UserError(`${path}: column ${col} (${role}) has type ${t}; expected lists of float vectors.`);
    if (hint) return { kind: 'list', columns: [col], dim: hint };
    const dim = await peek.flatDim(col, rewardCol, role);
    return { kind: 'list', columns: [col], dim };
  };
  const observation = await vec('observation', obs, options.obsDim ?? metaObs);
  const action = await vec('action', act, options.actDim ?? metaAct);
  const nextObservation = next ? await vec('next_observation', next, observation.dim) : undefined;
  const checkMeta = (what: string, got: number, given: number | undefined, src: string) => {
    if (given !== undefined && given !== got) {
      throw new UserError(`${path}: ${what} columns hold ${got} values per row, but ${src} says ${given}. Fix the metadata or the data (or pass the right ${what === 'observation' ? 'obsDim' : 'actDim'}).`);
    }
  };
  checkMeta('observation', observation.dim, options.obsDim, 'the obsDim option');
  checkMeta('observation', observation.dim, metaObs, "the file's metadata (obsDim)");
  checkMeta('action', action.dim, options.actDim, 'the actDim option');
  checkMeta('action', action.dim, metaAct, "the file's metadata (actDim)");
  if (nextObservation && nextObservation.dim !== observation.dim) {
    throw new UserError(
      `${path}: observation (${observation.columns.length > 1 ? `${observation.columns[0]}…` : observation.columns[0]}) has ${observation.dim} dimensions but next_observation (${nextObservation.columns.length > 1 ? `${nextObservation.columns[0]}…` : nextObservation.columns[0]}) has ${nextObservation.dim}. Both must describe the same state: check the column mapping (${OPTIONS_HINT}) or the data.`,
    );
  }
  let deriveNext = false;
  if (layout === 'transitions' && !nextObservation) {
    const doneLike = terminalCol !== undefined && /^dones?$/i.test(terminalCol);
    if (!episodeCol && !timeoutCol && !doneLike) {
      throw p.missing(
        'next_observation',
        ', and next_observation cannot be derived from the following row because nothing marks where episodes end (no episode id, timeouts or dones column)',
      );
    }
    deriveNext = true;
    p.warnings.push(
      `${path}: no next_observation column: using the following row's observation within the same episode (episodes end ${episodeCol ? `where ${episodeCol} changes or ` : ''}after a terminal or timeout row); the last row of each episode is dropped.`,
    );
  }
  const exact = (name: string) => (p.fields.has(name) && isNumericType(p.type(name)) ? name : undefined);
  const rawReward = layout === 'transitions' ? exact('raw_reward') : undefined;
  const penalty = layout === 'transitions' ? exact('penalty') : undefined;
  const env = options.env ?? p.meta.get('env') ?? undefined;
  const dims: TransitionDims = env ? { obsDim: observation.dim, actDim: action.dim, env } : { obsDim: observation.dim, actDim: action.dim };
  const columns = [
    ...new Set(
      [...observation.columns, ...action.columns, rewardCol, ...(nextObservation?.columns ?? []), terminalCol, timeoutCol, episodeCol, stepCol, rawReward, penalty].filter(
        (c): c is string => c !== undefined,
      ),
    ),
  ];
  return {
    layout,
    observation,
    action,
    nextObservation,
    reward: rewardCol,
    terminal: terminalCol,
    timeout: timeoutCol,
    episode: episodeCol,
    step: stepCol,
    rawReward,
    penalty,
    dims,
    deriveNext,
    columns,
    warnings: p.warnings,
  };
}

/** Reads the first row of the first non-empty row group, to learn list lengths. */
class Peek {
  constructor(private readonly source: ParquetSource) {}
  private async firstRow(columns: string[]): Promise<RecordBatch | undefined> {
    const g = this.source.rowGroups.findIndex((r) => r.numRows > 0);
    if (g < 0) return undefined;
    const batches = await this.source.readRowGroup(g, { columns, limit: 1, batchSize: 1 });
    return batches.find((b) => b.numRows > 0);
  }
  async listLength(col: string, role: Role): Promise<number> {
    const rb = await this.firstRow([col]);
    if (!rb) return 0;
    const d = rb.getChildAt(0)!.data[0]!;
    const n = listLengths(d)[0]!;
    if (n <= 0) throw new UserError(`${this.source.path}: column ${col} (${role}): the first row's list is empty or null, so the ${role} size is unknown.`);
    return n;
  }
  async innerLength(col: string, role: Role): Promise<number> {
    const rb = await this.firstRow([col]);
    if (!rb) return 0;
    const d = rb.getChildAt(0)!.data[0]!;
    const outer = listOffsets(d);
    const inner = d.children[0]!;
    if (outer[1]! - outer[0]! < 1) throw new UserError(`${this.source.path}: column ${col} (${role}): the first episode has no steps, so the ${role} size is unknown.`);
    const lens = listLengths(inner);
    return lens[outer[0]!]!;
  }
  async flatDim(col: string, rewardCol: string, role: Role): Promise<number> {
    const rb = await this.firstRow([col, rewardCol]);
    const what = role === 'action' ? 'actDim' : 'obsDim';
    if (!rb) return 0;
    const values = listLengths(rb.getChild(col)!.data[0]!)[0]!;
    const steps = listLengths(rb.getChild(rewardCol)!.data[0]!)[0]!;
    const cands = (role === 'action' ? [steps] : [steps + 1, steps]).filter((s) => s > 0 && values % s === 0 && values / s > 0);
    const dims = [...new Set(cands.map((s) => values / s))];
    if (dims.length !== 1) {
      throw new UserError(
        `${this.source.path}: column ${col} (${role}) is a flat list per episode (${values} numbers for ${steps} steps), so its vector size is ambiguous or inconsistent. Pass ${what} (CLI --${what === 'obsDim' ? 'obs-dim' : 'act-dim'}), or store it as a list of vectors.`,
      );
    }
    return dims[0]!;
  }
}

// ---------------------------------------------------------------------------------------------
// Arrow → typed arrays

// apache-arrow's Data.slice() slices the values and offsets buffers (and a fixed-size list's child)
// and also advances `offset`, which therefore applies only to bitmaps (validity, Bool values).
// So values/offsets are indexed from 0 here, bitmaps from d.offset.

/** Offsets of a List/LargeList/FixedSizeList Data into its child, as numbers, for rows [0, length]. */
function listOffsets(d: Data): Int32Array | Float64Array {
  if (DataType.isFixedSizeList(d.type)) {
    const k = d.type.listSize;
    const out = new Int32Array(d.length + 1);
    for (let i = 0; i <= d.length; i++) out[i] = i * k;
    return out;
  }
  const vo = d.valueOffsets as Int32Array | BigInt64Array;
  if (vo instanceof BigInt64Array) {
    const out = new Float64Array(d.length + 1);
    for (let i = 0; i <= d.length; i++) out[i] = Number(vo[i]!);
    return out;
  }
  return vo.subarray(0, d.length + 1);
}

function listLengths(d: Data): Int32Array {
  const off = listOffsets(d);
  const out = new Int32Array(d.length);
  for (let i = 0; i < d.length; i++) out[i] = off[i + 1]! - off[i]!;
  return out;
}

function isNull(d: Data, i: number): boolean {
  if (d.nullCount === 0 || !d.nullBitmap || d.nullBitmap.length === 0) return false;
  const j = d.offset + i;
  return ((d.nullBitmap[j >> 3]! >> (j & 7)) & 1) === 0;
}

/** `count` values of a numeric Data starting at row `start` as float32; nulls → NaN. */
function floats(d: Data, start: number, count: number, path: string, col: string): Float32Array {
  const t = d.type;
  const s = start;
  let out: Float32Array;
  if (DataType.isFloat(t) || DataType.isInt(t)) {
    const v = d.values as Float32Array | Float64Array | Int32Array | BigInt64Array | Uint16Array;
    if (v instanceof Float32Array) out = v.subarray(s, s + count);
    else if (v instanceof BigInt64Array || v instanceof BigUint64Array) {
      out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = Number(v[s + i]!);
    } else if (DataType.isFloat(t) && t.precision === 0) {
      out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = halfToFloat(v[s + i] as number);
    } else out = new Float32Array((v as Float64Array).subarray(s, s + count));
  } else if (DataType.isBool(t)) {
    out = new Float32Array(count);
    const bits = d.values as Uint8Array;
    const b = d.offset + start;
    for (let i = 0; i < count; i++) out[i] = (bits[(b + i) >> 3]! >> ((b + i) & 7)) & 1;
  } else {
    throw new UserError(`${path}: column ${col} holds ${t} values, expected numbers.`);
  }
  if (d.nullCount > 0) {
    if (out.buffer === (d.values as ArrayBufferView).buffer) out = out.slice();
    for (let i = 0; i < count; i++) if (isNull(d, start + i)) out[i] = NaN;
  }
  return out;
}

function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * 2 ** -14 * (f / 1024);
  if (e === 31) return f ? NaN : s * Infinity;
  return s * 2 ** (e - 15) * (1 + f / 1024);
}

/** 0/1 flags from a bool or numeric Data; nulls → 0. */
function flags(d: Data, start: number, count: number, path: string, col: string): Uint8Array {
  const out = new Uint8Array(count);
  const t = d.type;
  const s = start;
  if (DataType.isBool(t)) {
    const bits = d.values as Uint8Array;
    const b = d.offset + start;
    for (let i = 0; i < count; i++) out[i] = (bits[(b + i) >> 3]! >> ((b + i) & 7)) & 1;
  } else if (DataType.isFloat(t) || DataType.isInt(t)) {
    const v = d.values as ArrayLike<number | bigint>;
    for (let i = 0; i < count; i++) {
      const x = v[s + i]!;
      out[i] = typeof x === 'bigint' ? (x !== 0n ? 1 : 0) : x !== 0 && x === x ? 1 : 0;
    }
  } else throw new UserError(`${path}: column ${col} holds ${t} values, expected booleans or numbers.`);
  if (d.nullCount > 0) for (let i = 0; i < count; i++) if (isNull(d, start + i)) out[i] = 0;
  return out;
}

function ints(d: Data, start: number, count: number): Int32Array {
  const v = d.values as ArrayLike<number | bigint>;
  const s = start;
  if (v instanceof Int32Array && d.nullCount === 0) return v.subarray(s, s + count);
  const out = new Int32Array(count);
  for (let i = 0; i < count; i++) out[i] = Number(v[s + i]!);
  return out;
}

/**
 * Row-major values of a list column whose rows should all hold `dim` numbers: the child values
 * buffer itself when the offsets are regular (checked, no per-row copying), else a UserError
 * naming the first irregular row. Null rows read as NaN rows.
 */
function vectorRows(d: Data, dim: number, path: string, col: string, role: Role, rowBase: number, unit = 'row'): Float32Array {
  const n = d.length;
  const child = d.children[0]!;
  if (DataType.isFixedSizeList(d.type)) {
    if (d.type.listSize !== dim) throw new UserError(`${path}: column ${col} (${role}) has ${d.type.listSize} values per ${unit}, expected ${dim}.`);
    return withNullRows(floats(child, 0, n * dim, path, col), d, dim);
  }
  const off = listOffsets(d);
  const base = off[0]!;
  const hasNulls = d.nullCount > 0;
  for (let i = 0; i < n; i++) {
    if (off[i + 1]! - off[i]! !== dim && !(hasNulls && isNull(d, i))) {
      const len = off[i + 1]! - off[i]!;
      throw new UserError(
        `${path}: column ${col} (${role}): ${unit} ${rowBase + i} has ${len} values but ${role} vectors have ${dim} (from the first ${unit}). Every ${unit} must have the same number of values; fix or drop the malformed ${unit}s.`,
      );
    }
  }
  if (!hasNulls && off[n]! - base === n * dim) return floats(child, base, n * dim, path, col);
  const out = new Float32Array(n * dim);
  for (let i = 0; i < n; i++) {
    if (isNull(d, i)) out.fill(NaN, i * dim, (i + 1) * dim);
    else out.set(floats(child, off[i]!, dim, path, col), i * dim);
  }
  return out;
}

function withNullRows(values: Float32Array, d: Data, dim: number): Float32Array {
  if (d.nullCount === 0) return values;
  const out = values.slice();
  for (let i = 0; i < d.length; i++) if (isNull(d, i)) out.fill(NaN, i * dim, (i + 1) * dim);
  return out;
}

/** One scalar column per dimension → row-major n×dim (blocked transpose). */
function transposeColumns(cols: Float32Array[], n: number): Float32Array {
  const dim = cols.length;
  const out = new Float32Array(n * dim);
  const BLOCK = 2048;
  for (let i0 = 0; i0 < n; i0 += BLOCK) {
    const i1 = Math.min(n, i0 + BLOCK);
    for (let d = 0; d < dim; d++) {
      const c = cols[d]!;
      for (let i = i0, j = i0 * dim + d; i < i1; i++, j += dim) out[j] = c[i]!;
    }
  }
  return out;
}

/** Index of the first NaN/±Infinity, or -1 (a branch-free sum finds "none" fast). */
function firstNonFinite(a: Float32Array): number {
  let acc = 0;
  for (let i = 0; i < a.length; i++) acc += a[i]! * 0;
  if (acc === 0) return -1;
  for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i]!)) return i;
  return -1;
}

function nonFiniteError(path: string, column: string, role: Role, where: string, value: number): UserError {
  return new UserError(
    `${path}: column ${column} (${role}) has a non-finite value (${Number.isNaN(value) ? 'NaN or null' : value}) at ${where}. MOPO cannot train on NaN/Infinity: fix the data, or pass allowNonFinite: true (CLI --allow-non-finite) to read such rows anyway and let the cleaning stage drop them.`,
  );
}

// ---------------------------------------------------------------------------------------------
// Batch conversion: transitions layout

interface Rows {
  n: number;
  /** File row of rows[0]. */
  firstRow: number;
  obs: Float32Array;
  act: Float32Array;
  reward: Float32Array;
  next: Float32Array | undefined;
  terminal: Uint8Array;
  timeout: Uint8Array;
  episode: Int32Array | undefined;
  step: Int32Array | undefined;
  rawReward: Float32Array | undefined;
  penalty: Float32Array | undefined;
}

class Converter {
  constructor(
    readonly path: string,
    readonly plan: ReadPlan,
    readonly allowNonFinite: boolean,
  ) {}

  private col(rb: RecordBatch, name: string): Data {
    const v = rb.getChild(name);
    if (!v || v.data.length !== 1) throw new Error(`record batch lacks column ${name}`);
    return v.data[0]!;
  }

  private vector(rb: RecordBatch, v: VectorColumn, role: Role, firstRow: number): Float32Array {
    const n = rb.numRows;
    let out: Float32Array;
    if (v.kind === 'split') {
      const cols = v.columns.map((c) => floats(this.col(rb, c), 0, n, this.path, c));
      if (!this.allowNonFinite) for (let d = 0; d < cols.length; d++) this.checkFinite(cols[d]!, 1, v.columns[d]!, role, firstRow);
      return transposeColumns(cols, n);
    }
    if (v.kind === 'scalar') out = floats(this.col(rb, v.columns[0]!), 0, n, this.path, v.columns[0]!);
    else out = vectorRows(this.col(rb, v.columns[0]!), v.dim, this.path, v.columns[0]!, role, firstRow);
    if (!this.allowNonFinite) this.checkFinite(out, v.dim, v.columns[0]!, role, firstRow);
    return out;
  }

  private checkFinite(a: Float32Array, dim: number, column: string, role: Role, firstRow: number): void {
    const i = firstNonFinite(a);
    if (i < 0) return;
    const row = firstRow + Math.floor(i / dim);
    throw nonFiniteError(this.path, column, role, `row ${row}${dim > 1 ? `, dimension ${i % dim}` : ''}`, a[i]!);
  }

  rows(rb: RecordBatch, firstRow: number): Rows {
    const p = this.plan;
    const n = rb.numRows;
    const reward = floats(this.col(rb, p.reward), 0, n, this.path, p.reward);
    if (!this.allowNonFinite) this.checkFinite(reward, 1, p.reward, 'reward', firstRow);
    const opt = (name: string | undefined) => (name ? floats(this.col(rb, name), 0, n, this.path, name) : undefined);
    return {
      n,
      firstRow,
      obs: this.vector(rb, p.observation, 'observation', firstRow),
      act: this.vector(rb, p.action, 'action', firstRow),
      reward,
      next: p.nextObservation ? this.vector(rb, p.nextObservation, 'next_observation', firstRow) : undefined,
      terminal: p.terminal ? flags(this.col(rb, p.terminal), 0, n, this.path, p.terminal) : new Uint8Array(n),
      timeout: p.timeout ? flags(this.col(rb, p.timeout), 0, n, this.path, p.timeout) : new Uint8Array(n),
      episode: p.episode ? ints(this.col(rb, p.episode), 0, n) : undefined,
      step: p.step ? ints(this.col(rb, p.step), 0, n) : undefined,
      rawReward: opt(p.rawReward),
      penalty: opt(p.penalty),
    };
  }

  optional(): OptionalColumn[] {
    const p = this.plan;
    const out: OptionalColumn[] = [];
    if (p.rawReward) out.push('rawReward');
    if (p.penalty) out.push('penalty');
    if (p.layout === 'trajectories' || p.episode) out.push('episode');
    if (p.layout === 'trajectories' || p.step) out.push('step');
    return out;
  }

  batch(r: Rows): TransitionBatch {
    const cols: TransitionColumns = {
      observation: r.obs,
      action: r.act,
      reward: r.reward,
      nextObservation: r.next!,
      terminal: r.terminal,
      timeout: r.timeout,
    };
    if (r.rawReward) cols.rawReward = r.rawReward;
    if (r.penalty) cols.penalty = r.penalty;
    if (r.episode) cols.episode = r.episode;
    if (r.step) cols.step = r.step;
    return new TransitionBatch(this.plan.dims, cols);
  }
}

/**
 * next_observation from the following row of the same episode, across batch boundaries. Row i is
 * the last of its episode when it is terminal, a timeout, or the episode id changes after it; such
 * rows have no next observation in the file and are dropped, and the kept transition before one
 * gets timeout = 1 (it now ends its episode). Whether row i is kept and whether it gets that mark
 * depends on rows i+1 and i+2, so the last two rows of each batch wait for the next batch.
 */
class NextFromFollowingRow {
  private carry: Rows | undefined;
  dropped = 0;
  droppedTerminal = 0;

  constructor(
    private readonly conv: Converter,
    private readonly dims: TransitionDims,
  ) {}

  /** Feed a batch of rows; undefined marks the end of the file. */
  push(rows: Rows | undefined): TransitionBatch | undefined {
    const eof = rows === undefined;
    const r = rows ? (this.carry ? concatRows([this.carry, rows], this.dims) : rows) : this.carry;
    this.carry = undefined;
    if (!r) return undefined;
    const m = r.n;
    const ends = (i: number) => i === m - 1 ? eof : r.terminal[i] === 1 || r.timeout[i] === 1 || (r.episode !== undefined && r.episode[i] !== r.episode[i + 1]);
    const candidates = eof ? m : Math.max(0, m - 2); // rows whose fate is known
    if (!eof) this.carry = sliceRows(r, candidates, m, this.dims);
    const keepRuns: Array<[number, number]> = [];
    let runStart = 0;
    for (let i = 0; i < candidates; i++) {
      if (!ends(i)) continue;
      this.dropped++;
      this.droppedTerminal += r.terminal[i]!;
      if (i > runStart) keepRuns.push([runStart, i]);
      runStart = i + 1;
    }
    if (candidates > runStart) keepRuns.push([runStart, candidates]);
    const total = keepRuns.reduce((s, [x, y]) => s + y - x, 0);
    if (total === 0) return undefined;
    const o = this.dims.obsDim;
    const out = sliceRowsRuns(r, keepRuns, total, this.dims);
    let w = 0;
    for (const [x, y] of keepRuns) {
      out.next!.set(r.obs.subarray((x + 1) * o, (y + 1) * o), w * o);
      w += y - x;
      // row y (if any) is a dropped episode end: the kept row y-1 now ends that episode
      if (y < m && ends(y)) out.timeout[w - 1] = 1;
    }
    return this.conv.batch(out);
  }
}

function optionalArrays(r: Rows): Array<'episode' | 'step' | 'rawReward' | 'penalty'> {
  return (['episode', 'step', 'rawReward', 'penalty'] as const).filter((k) => r[k] !== undefined);
}

function concatRows(parts: Rows[], dims: TransitionDims): Rows {
  const n = parts.reduce((s, r) => s + r.n, 0);
  const o = dims.obsDim;
  const a = dims.actDim;
  const out: Rows = {
    n,
    firstRow: parts[0]!.firstRow,
    obs: new Float32Array(n * o),
    act: new Float32Array(n * a),
    reward: new Float32Array(n),
    next: undefined,
    terminal: new Uint8Array(n),
    timeout: new Uint8Array(n),
    episode: parts[0]!.episode ? new Int32Array(n) : undefined,
    step: parts[0]!.step ? new Int32Array(n) : undefined,
    rawReward: parts[0]!.rawReward ? new Float32Array(n) : undefined,
    penalty: parts[0]!.penalty ? new Float32Array(n) : undefined,
  };
  let row = 0;
  for (const r of parts) {
    out.obs.set(r.obs, row * o);
    out.act.set(r.act, row * a);
    out.reward.set(r.reward, row);
    out.terminal.set(r.terminal, row);
    out.timeout.set(r.timeout, row);
    for (const k of optionalArrays(out)) (out[k] as Float32Array).set(r[k] as Float32Array, row);
    row += r.n;
  }
  return out;
}

function sliceRows(r: Rows, start: number, end: number, dims: TransitionDims): Rows {
  return sliceRowsRuns(r, [[start, end]], end - start, dims, false);
}

/** Copies the rows of the given runs into a new Rows (with a next buffer allocated when asked). */
function sliceRowsRuns(r: Rows, runs: Array<[number, number]>, n: number, dims: TransitionDims, withNext = true): Rows {
  const o = dims.obsDim;
  const a = dims.actDim;
  const out: Rows = {
    n,
    firstRow: r.firstRow + (runs[0]?.[0] ?? 0),
    obs: new Float32Array(n * o),
    act: new Float32Array(n * a),
    reward: new Float32Array(n),
    next: withNext ? new Float32Array(n * o) : undefined,
    terminal: new Uint8Array(n),
    timeout: new Uint8Array(n),
    episode: r.episode ? new Int32Array(n) : undefined,
    step: r.step ? new Int32Array(n) : undefined,
    rawReward: r.rawReward ? new Float32Array(n) : undefined,
    penalty: r.penalty ? new Float32Array(n) : undefined,
  };
  let w = 0;
  for (const [x, y] of runs) {
    out.obs.set(r.obs.subarray(x * o, y * o), w * o);
    out.act.set(r.act.subarray(x * a, y * a), w * a);
    out.reward.set(r.reward.subarray(x, y), w);
    out.terminal.set(r.terminal.subarray(x, y), w);
    out.timeout.set(r.timeout.subarray(x, y), w);
    for (const k of optionalArrays(r)) (out[k] as Float32Array).set((r[k] as Float32Array).subarray(x, y), w);
    w += y - x;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Batch conversion: trajectory layout

/** Per-episode vectors: offsets (in vectors) per row and the row-major values. */
interface Nested {
  offsets: Int32Array;
  values: Float32Array;
}

class TrajectoryConverter {
  constructor(
    readonly path: string,
    readonly plan: ReadPlan,
    readonly allowNonFinite: boolean,
  ) {}

  private col(rb: RecordBatch, name: string): Data {
    return rb.getChild(name)!.data[0]!;
  }

  /** list<list<num>> | list<fixed_size_list<num>> | list<num> (flattened with dim). */
  private nested(d: Data, dim: number, col: string, role: Role, firstRow: number): Nested {
    const outer = listOffsets(d);
    const E = d.length;
    const o0 = outer[0]!;
    const offsets = new Int32Array(E + 1);
    const inner = d.children[0]!;
    let values: Float32Array;
    if (isListType(inner.type)) {
      for (let e = 0; e <= E; e++) offsets[e] = outer[e]! - o0;
      const count = offsets[E]!;
      // view the inner lists of these episodes as rows
      const sub = inner.slice(o0, count);
      values = vectorRows(sub, dim, this.path, col, role, 0, 'step');
    } else {
      for (let e = 0; e < E; e++) {
        const len = outer[e + 1]! - outer[e]!;
        if (len % dim !== 0) {
          throw new UserError(`${this.path}: column ${col} (${role}): episode row ${firstRow + e} holds ${len} numbers, not a multiple of the ${role} size ${dim}. Fix the data or pass the right ${role === 'action' ? 'actDim' : 'obsDim'}.`);
        }
        offsets[e + 1] = offsets[e]! + len / dim;
      }
      values = floats(inner, o0, offsets[E]! * dim, this.path, col);
    }
    if (!this.allowNonFinite) {
      const i = firstNonFinite(values);
      if (i >= 0) {
        const v = Math.floor(i / dim);
        let e = 0;
        while (offsets[e + 1]! <= v) e++;
        throw nonFiniteError(this.path, col, role, `episode row ${firstRow + e}, step ${v - offsets[e]!}${dim > 1 ? `, dimension ${i % dim}` : ''}`, values[i]!);
      }
    }
    return { offsets, values };
  }

  private scalars(d: Data, col: string, role: Role, firstRow: number, asFlags: boolean): { offsets: Int32Array; values: Float32Array | Uint8Array } {
    const outer = listOffsets(d);
    const E = d.length;
    const o0 = outer[0]!;
    const offsets = new Int32Array(E + 1);
    for (let e = 0; e <= E; e++) offsets[e] = outer[e]! - o0;
    const inner = d.children[0]!;
    const values = asFlags ? flags(inner, o0, offsets[E]!, this.path, col) : floats(inner, o0, offsets[E]!, this.path, col);
    if (!asFlags && !this.allowNonFinite) {
      const i = firstNonFinite(values as Float32Array);
      if (i >= 0) {
        let e = 0;
        while (offsets[e + 1]! <= i) e++;
        throw nonFiniteError(this.path, col, role, `episode row ${firstRow + e}, step ${i - offsets[e]!}`, values[i]!);
      }
    }
    return { offsets, values };
  }

  convert(rb: RecordBatch, firstRow: number): TransitionBatch | undefined {
    const p = this.plan;
    const E = rb.numRows;
    const o = p.dims.obsDim;
    const a = p.dims.actDim;
    const rew = this.scalars(this.col(rb, p.reward), p.reward, 'reward', firstRow, false);
    const obs = this.nested(this.col(rb, p.observation.columns[0]!), o, p.observation.columns[0]!, 'observation', firstRow);
    const act = this.nested(this.col(rb, p.action.columns[0]!), a, p.action.columns[0]!, 'action', firstRow);
    const nxt = p.nextObservation ? this.nested(this.col(rb, p.nextObservation.columns[0]!), o, p.nextObservation.columns[0]!, 'next_observation', firstRow) : undefined;
    const term = p.terminal ? this.scalars(this.col(rb, p.terminal), p.terminal, 'terminal', firstRow, true) : undefined;
    const tout = p.timeout ? this.scalars(this.col(rb, p.timeout), p.timeout, 'timeout', firstRow, true) : undefined;
    const epIds = p.episode ? ints(this.col(rb, p.episode), 0, E) : undefined;
    // transitions per episode
    const counts = new Int32Array(E);
    let total = 0;
    for (let e = 0; e < E; e++) {
      const T = rew.offsets[e + 1]! - rew.offsets[e]!;
      const nObs = obs.offsets[e + 1]! - obs.offsets[e]!;
      const nAct = act.offsets[e + 1]! - act.offsets[e]!;
      const row = firstRow + e;
      const bad = (what: string) =>
        new UserError(`${this.path}: episode row ${row}: ${what}. In the trajectory layout every episode row needs T rewards, T actions and T or T+1 observations.`);
      if (nAct !== T) throw bad(`${p.action.columns[0]} has ${nAct} steps but ${p.reward} has ${T}`);
      for (const [f, name] of [
        [term, p.terminal],
        [tout, p.timeout],
      ] as const) {
        if (f && f.offsets[e + 1]! - f.offsets[e]! !== T) throw bad(`${name} has ${f.offsets[e + 1]! - f.offsets[e]!} steps but ${p.reward} has ${T}`);
      }
      let c: number;
      if (nObs === T + 1) c = T;
      else if (nObs === T) {
        if (nxt) {
          const nn = nxt.offsets[e + 1]! - nxt.offsets[e]!;
          if (nn !== T) throw bad(`${p.nextObservation!.columns[0]} has ${nn} steps but ${p.reward} has ${T}`);
          c = T;
        } else c = Math.max(0, T - 1);
      } else throw bad(`${p.observation.columns[0]} has ${nObs} steps but ${p.reward} has ${T}`);
      counts[e] = c;
      total += c;
    }
    if (total === 0) return undefined;
    const out = TransitionBatch.allocate(p.dims, total, ['episode', 'step']);
    let w = 0;
    for (let e = 0; e < E; e++) {
      const c = counts[e]!;
      if (c === 0) continue;
      const s0 = obs.offsets[e]!;
      const r0 = rew.offsets[e]!;
      const a0 = act.offsets[e]!;
      out.observation.set(obs.values.subarray(s0 * o, (s0 + c) * o), w * o);
      if (nxt && obs.offsets[e + 1]! - s0 === rew.offsets[e + 1]! - r0) {
        const n0 = nxt.offsets[e]!;
        out.nextObservation.set(nxt.values.subarray(n0 * o, (n0 + c) * o), w * o);
      } else out.nextObservation.set(obs.values.subarray((s0 + 1) * o, (s0 + 1 + c) * o), w * o);
      out.action.set(act.values.subarray(a0 * a, (a0 + c) * a), w * a);
      out.reward.set(rew.values.subarray(r0, r0 + c) as Float32Array, w);
      if (term) out.terminal.set(term.values.subarray(term.offsets[e]!, term.offsets[e]! + c) as Uint8Array, w);
      if (tout) out.timeout.set(tout.values.subarray(tout.offsets[e]!, tout.offsets[e]! + c) as Uint8Array, w);
      if (!out.terminal[w + c - 1]) out.timeout[w + c - 1] = 1;
      out.episode!.fill(epIds ? epIds[e]! : firstRow + e, w, w + c);
      const st = out.step!;
      for (let t = 0; t < c; t++) st[w + t] = t;
      w += c;
    }
    return out;
  }
}

// ---------------------------------------------------------------------------------------------
// The Observable

/** Slices a stream of batches to the transition range [start, end). */
class RangeLimiter {
  private pos = 0;
  constructor(
    private readonly start: number,
    private readonly end: number,
  ) {}
  get done(): boolean {
    return this.pos >= this.end;
  }
  take(b: TransitionBatch): TransitionBatch | undefined {
    const from = this.pos;
    this.pos += b.length;
    const lo = Math.max(0, this.start - from);
    const hi = Math.min(b.length, this.end - from);
    if (hi <= lo) return undefined;
    return lo === 0 && hi === b.length ? b : b.slice(lo, hi);
  }
}

function checkRange(path: string, rows: ReadOptions['rows']): { start: number; end: number } {
  const start = rows?.start ?? 0;
  const end = rows?.end ?? Infinity;
  if (!(Number.isInteger(start) && start >= 0) || !(end === Infinity || (Number.isInteger(end) && end >= 0))) {
    throw new UserError(`${path}: rows range {start: ${rows?.start}, end: ${rows?.end}} must be non-negative integers.`);
  }
  if (end < start) throw new UserError(`${path}: rows range end ${end} is before start ${start}.`);
  return { start, end };
}

/**
 * Streams the transitions of a Parquet file. Cold: every subscription opens and reads the file
 * again. Memory is bounded by one row group (its compressed bytes and decoded Arrow data). Errors
 * a user can cause (missing/damaged file, missing columns, bad values) arrive as UserError.
 */
export function readTransitions(path: string, options: ReadOptions = {}): Observable<TransitionBatch> {
  return new Observable<TransitionBatch>((subscriber) => {
    let stopped = false;
    const closed = () => stopped || subscriber.closed;
    const run = async () => {
      const batchSize = Math.max(1, Math.floor(options.batchSize ?? DEFAULT_BATCH_SIZE));
      const range = checkRange(path, options.rows);
      const source = await ParquetSource.open(path);
      try {
        const plan = await planRead(source, options);
        for (const w of plan.warnings) options.onWarning?.(w);
        const limiter = new RangeLimiter(range.start, range.end);
        /** Emits in pieces of at most batchSize rows. */
        const emitAll = (b: TransitionBatch | undefined) => {
          if (!b) return;
          for (let i = 0; i < b.length && !closed(); i += batchSize) subscriber.next(b.length <= batchSize ? b : b.slice(i, i + batchSize));
        };
        /** Applies the transition range, then emits. */
        const emit = (b: TransitionBatch | undefined) => {
          if (!b || closed()) return;
          const part = limiter.take(b);
          if (part && part.length > 0) emitAll(part);
        };
        const allowNonFinite = options.allowNonFinite ?? false;
        if (plan.layout === 'trajectories') {
          const conv = new TrajectoryConverter(path, plan, allowNonFinite);
          const perBatch = Math.max(1, Math.ceil(batchSize / 1000));
          for (const rg of source.rowGroups) {
            if (closed() || limiter.done) break;
            if (rg.numRows === 0) continue;
            const batches = await source.readRowGroup(rg.index, { columns: plan.columns, batchSize: perBatch });
            let row = rg.firstRow;
            for (const rb of batches) {
              if (closed() || limiter.done) break;
              emit(conv.convert(rb, row));
              row += rb.numRows;
            }
          }
          return;
        }
        const conv = new Converter(path, plan, allowNonFinite);
        if (plan.deriveNext) {
          const derive = new NextFromFollowingRow(conv, plan.dims);
          for (const rg of source.rowGroups) {
            if (closed() || limiter.done) break;
            if (rg.numRows === 0) continue;
            const batches = await source.readRowGroup(rg.index, { columns: plan.columns, batchSize });
            let row = rg.firstRow;
            for (const rb of batches) {
              if (closed() || limiter.done) break;
              emit(derive.push(conv.rows(rb, row)));
              row += rb.numRows;
            }
          }
          emit(derive.push(undefined));
          if (derive.droppedTerminal > 0) {
            options.onWarning?.(
              `${path}: ${derive.dropped} episode-final rows were dropped (no next observation in the file), ${derive.droppedTerminal} of them terminal; add a next_observations column to keep them.`,
            );
          }
          return;
        }
        // plain transitions: the row range maps onto file rows, so skip whole row groups
        for (const rg of source.rowGroups) {
          if (closed()) break;
          const lo = Math.max(range.start, rg.firstRow);
          const hi = Math.min(range.end, rg.firstRow + rg.numRows);
          if (hi <= lo) {
            if (rg.firstRow >= range.end) break;
            continue;
          }
          const offset = lo - rg.firstRow;
          const limit = hi - lo;
          const batches = await source.readRowGroup(rg.index, { columns: plan.columns, batchSize, offset, limit });
          let row = lo;
          for (const rb of batches) {
            if (closed()) break;
            emitAll(conv.batch(conv.rows(rb, row)));
            row += rb.numRows;
          }
        }
      } finally {
        await source.close();
      }
    };
    run().then(
      () => subscriber.complete(),
      (e) => subscriber.error(e),
    );
    return () => {
      stopped = true;
    };
  });
}

/** What readTransitions would do with a file, plus the file's schema and layout (no data read beyond one row). */
export async function readParquetInfo(path: string, options: ReadOptions = {}): Promise<ParquetInfo> {
  const source = await ParquetSource.open(path);
  try {
    const plan = await planRead(source, options);
    const f = source.footer;
    const meta: Record<string, string> = {};
    for (const [k, v] of source.schema.metadata) meta[k] = v;
    for (const [k, v] of f.keyValue) if (k !== 'ARROW:schema') meta[k] = v;
    const cols: ParquetInfo['columns'] = {};
    const vecCols = (v: VectorColumn) => (v.kind === 'split' ? v.columns : v.columns[0]!);
    cols.observation = vecCols(plan.observation);
    cols.action = vecCols(plan.action);
    cols.reward = plan.reward;
    if (plan.nextObservation) cols.next_observation = vecCols(plan.nextObservation);
    if (plan.terminal) cols.terminal = plan.terminal;
    if (plan.timeout) cols.timeout = plan.timeout;
    if (plan.episode) cols.episode = plan.episode;
    if (plan.step) cols.step = plan.step;
    const rg0 = f.rowGroups[0];
    return {
      path,
      bytes: source.size,
      layout: plan.layout,
      columns: cols,
      plan,
      dims: plan.dims,
      rows: f.numRows,
      transitions: plan.layout === 'transitions' && !plan.deriveNext ? f.numRows : undefined,
      rowGroups: f.rowGroups.map((r) => ({ index: r.index, rows: r.numRows, firstRow: r.firstRow, compressedBytes: r.compressedBytes, uncompressedBytes: r.uncompressedBytes })),
      schema: source.schema.fields.map((x) => ({ name: x.name, type: String(x.type), nullable: x.nullable })),
      storage: rg0 ? rg0.columns.map((c) => ({ column: c.path.join('.'), physicalType: c.physicalType, codec: c.codec, encodings: c.encodings })) : [],
      metadata: meta,
      createdBy: f.createdBy,
      warnings: plan.warnings,
    };
  } finally {
    await source.close();
  }
}
