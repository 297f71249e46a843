// The flags every command that reads a dataset shares, and their translation to ReadOptions.
import type { Argv } from 'yargs';
import { ROLES, type ColumnMapping, type ReadOptions, type Role } from '../../operators/readTransitions.js';
import { UserError } from '../errors.js';

export function withInputOptions<T>(y: Argv<T>) {
  return y
    .option('columns', {
      type: 'string',
      array: true,
      describe: `map a role to the file's column(s): role=name, role=a,b,c (one per dimension) or role=prefix; roles: ${ROLES.join(', ')}`,
    })
    .option('layout', { type: 'string', choices: ['auto', 'transitions', 'trajectories'] as const, default: 'auto', describe: 'one transition a row, or one episode a row' })
    .option('obs-dim', { type: 'number', describe: 'observation size, for trajectory files whose observations are flattened lists' })
    .option('act-dim', { type: 'number', describe: 'action size, likewise' })
    .option('env', { type: 'string', describe: 'environment name to record in the dims (default: the file metadata)' });
}

export interface InputArgs {
  columns?: (string | number)[] | undefined;
  layout?: string | undefined;
  obsDim?: number | undefined;
  actDim?: number | undefined;
  env?: string | undefined;
}

export function readOptionsFrom(args: InputArgs): ReadOptions {
  const opts: ReadOptions = {};
  if (args.columns?.length) opts.columns = parseColumns(args.columns.map(String));
  if (args.layout && args.layout !== 'auto') opts.layout = args.layout as 'transitions' | 'trajectories';
  if (args.obsDim !== undefined) opts.obsDim = positiveInt(args.obsDim, '--obs-dim');
  if (args.actDim !== undefined) opts.actDim = positiveInt(args.actDim, '--act-dim');
  if (args.env) opts.env = args.env;
  return opts;
}

function positiveInt(x: number, flag: string): number {
  if (!Number.isInteger(x) || x <= 0) throw new UserError(`${flag} must be a positive integer, got ${x}`);
  return x;
}

export function parseColumns(specs: string[]): ColumnMapping {
  const mapping: ColumnMapping = {};
  for (const spec of specs) {
    const eq = spec.indexOf('=');
    const role = spec.slice(0, eq).trim() as Role;
    const value = spec.slice(eq + 1).trim();
    if (eq <= 0 || !value) throw new UserError(`--columns ${JSON.stringify(spec)}: expected role=name (e.g. --columns observation=obs reward=rew)`);
    if (!ROLES.includes(role)) throw new UserError(`--columns ${JSON.stringify(spec)}: unknown role "${role}"; roles are ${ROLES.join(', ')}`);
    mapping[role] = value.includes(',') ? value.split(',').map((s) => s.trim()) : value;
  }
  return mapping;
}
