import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UserError } from '../pipeline/errors.js';
import { Rng } from '../pipeline/random.js';
import { checkTrajectory, TRAJECTORY_TOLERANCE } from '../pipeline/envs/check.js';
import {
  D4RL_REFERENCE_RETURNS,
  ENV_NAMES,
  d4rlScore,
  envSpec,
  makeEnv,
  makeVectorEnv,
  terminationFn,
  vectorSeed,
  type Env,
} from '../pipeline/envs/env.js';
import { hopperIsHealthyState, hopperIsTerminal, walker2dIsHealthyState, walker2dIsTerminal } from '../pipeline/envs/locomotion.js';
import { compileModel, loadModel } from '../pipeline/envs/mujoco.js';
import { PENDULUM, pendulumObserve, pendulumStep } from '../pipeline/envs/pendulum.js';

// dist/test/envs.test.js -> the project root is two levels up; the shared references sit beside it.
const PROJECT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const TRAJECTORIES = join(PROJECT, '..', 'shared', 'reference', 'trajectories');
const haveTrajectories = existsSync(TRAJECTORIES);

function randomAction(rng: Rng, env: Env): Float64Array {
  const a = new Float64Array(env.actionSpec.dim);
  for (let i = 0; i < a.length; i++) a[i] = rng.uniform(env.actionSpec.low[i]!, env.actionSpec.high[i]!);
  return a;
}

function expectUserError(fn: () => unknown, ...parts: (string | RegExp)[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof UserError, `expected a UserError, got ${String(e)}`);
    for (const p of parts) assert.match(e.message, typeof p === 'string' ? new RegExp(p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')) : p);
    return true;
  });
}

async function expectUserErrorAsync(p: Promise<unknown>, ...parts: (string | RegExp)[]): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof UserError, `expected a UserError, got ${String(e)}`);
    for (const s of parts) assert.match(e.message, typeof s === 'string' ? new RegExp(s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')) : s);
    return true;
  });
}

// ------------------------------------------------------------------------------------------------
// Fidelity against the shared reference trajectories.

const trajectoryFiles = haveTrajectories ? readdirSync(TRAJECTORIES).filter((f) => f.endsWith('.json')).sort() : [];

if (!haveTrajectories) {
  test('reference trajectories reproduce to 1e-6', (t) => {
    t.skip(`no reference trajectories at ${TRAJECTORIES} (the project is expected to be cloned with shared/ beside it)`);
  });
}
for (const file of trajectoryFiles) {
  test(`reference trajectory ${file} reproduces to 1e-6 with matching terminations`, async () => {
    const r = await checkTrajectory(join(TRAJECTORIES, file));
    assert.ok(r.steps > 0);
    assert.ok(r.maxObsError <= TRAJECTORY_TOLERANCE, `${file}: maxObsError ${r.maxObsError} (worst at step ${r.worstObsStep})`);
    assert.ok(r.maxRewardError <= TRAJECTORY_TOLERANCE, `${file}: maxRewardError ${r.maxRewardError}`);
    assert.ok(r.terminationsMatch, `${file}: first termination mismatch at step ${r.firstTerminationMismatch}`);
    assert.equal(r.ok, true);
  });
}

test('checkTrajectory: a bad file is a UserError naming the file and what is wrong', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mopo-traj-'));
  try {
    const write = (name: string, content: unknown) => {
      const p = join(dir, name);
      writeFileSync(p, typeof content === 'string' ? content : JSON.stringify(content));
      return p;
    };
    const good = {
      env: 'pendulum',
      initialQpos: [0.5],
      initialQvel: [0.1],
      steps: [{ action: [0.3], observation: [0, 0, 0], reward: 0, terminated: false }],
    };
    await expectUserErrorAsync(checkTrajectory(join(dir, 'missing.json')), 'missing.json', 'no such file');
    await expectUserErrorAsync(checkTrajectory(write('notjson.json', '{ "env": ')), 'notjson.json', 'not valid JSON');
    await expectUserErrorAsync(checkTrajectory(write('array.json', [1, 2])), 'array.json', 'not a JSON object');
    await expectUserErrorAsync(checkTrajectory(write('env.json', { ...good, env: 'ant' })), 'env.json', 'unknown environment "ant"', 'halfcheetah');
    await expectUserErrorAsync(checkTrajectory(write('qpos.json', { ...good, env: 'hopper' })), 'qpos.json', '"initialQpos" has 1 values, hopper needs 6');
    await expectUserErrorAsync(checkTrajectory(write('steps.json', { ...good, steps: [] })), 'steps.json', '"steps" is empty');
    await expectUserErrorAsync(
      checkTrajectory(write('action.json', { ...good, steps: [{ ...good.steps[0], action: [1, 2] }] })),
      'action.json',
      'steps[0].action has 2 values',
    );
    await expectUserErrorAsync(checkTrajectory(write('term.json', { ...good, steps: [{ ...good.steps[0], terminated: 0 }] })), 'term.json', 'steps[0].terminated');
    await expectUserErrorAsync(checkTrajectory(write('skip.json', { ...good, env: 'hopper', frameSkip: 5 })), 'skip.json', '"frameSkip" is 5');
    // a well-formed pendulum file runs (and reports the large error of its made-up observation)
    const r = await checkTrajectory(write('good.json', good));
    assert.equal(r.env, 'pendulum');
    assert.equal(r.steps, 1);
    assert.ok(r.maxObsError > 0.1 && !r.ok);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a pendulum trajectory recorded through the interface replays exactly', async () => {
  const env = await makeEnv('pendulum');
  const obs0 = env.reset(3);
  const s0 = env.getState();
  const rng = new Rng(4, 'test');
  const steps = [];
  for (let t = 0; t < 50; t++) {
    const action = [rng.uniform(-2, 2)];
    const r = env.step(action);
    steps.push({ action, observation: Array.from(r.observation), reward: r.reward, terminated: r.terminated });
  }
  const dir = mkdtempSync(join(tmpdir(), 'mopo-traj-'));
  try {
    const p = join(dir, 'pendulum.json');
    writeFileSync(p, JSON.stringify({ env: 'Pendulum-v1', initialQpos: Array.from(s0.qpos), initialQvel: Array.from(s0.qvel), initialObservation: Array.from(obs0), steps }));
    const r = await checkTrajectory(p);
    assert.deepEqual([r.maxObsError, r.maxRewardError, r.terminationsMatch, r.ok], [0, 0, true, true]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// ------------------------------------------------------------------------------------------------
// Models and registry.

test('our models compile from data/mujoco with the expected sizes and options', async () => {
  const expect = { halfcheetah: [9, 9, 6, 0.01, 0], hopper: [6, 6, 3, 0.002, 1], walker2d: [9, 9, 6, 0.002, 1] } as const;
  for (const [name, [nq, nv, nu, timestep, integrator]] of Object.entries(expect)) {
    const { model } = await loadModel(name as keyof typeof expect);
    assert.deepEqual([model.nq, model.nv, model.nu, model.opt.timestep, model.opt.integrator as unknown as number], [nq, nv, nu, timestep, integrator], name);
    const spec = envSpec(name);
    assert.deepEqual([spec.nq, spec.nv, spec.actDim], [nq, nv, nu]);
  }
  const { model: cheetah } = await loadModel('halfcheetah');
  let mass = 0;
  for (const m of cheetah.body_mass as Float64Array) mass += m;
  assert.ok(Math.abs(mass - 14) < 1e-9, `half cheetah total mass ${mass}`);
});

const REFERENCE_MODELS = join(PROJECT, '..', 'shared', 'reference', 'mujoco');
const PHYSICS_FIELDS = [
  'qpos0', 'qpos_spring', 'body_parentid', 'body_pos', 'body_quat', 'body_ipos', 'body_iquat', 'body_mass', 'body_inertia',
  'jnt_type', 'jnt_bodyid', 'jnt_pos', 'jnt_axis', 'jnt_limited', 'jnt_range', 'jnt_stiffness', 'jnt_solref', 'jnt_solimp', 'jnt_margin',
  'dof_armature', 'dof_damping', 'dof_frictionloss', 'dof_M0',
  'geom_type', 'geom_bodyid', 'geom_contype', 'geom_conaffinity', 'geom_condim', 'geom_size', 'geom_pos', 'geom_quat',
  'geom_friction', 'geom_solref', 'geom_solimp', 'geom_solmix', 'geom_margin', 'geom_gap', 'geom_priority',
  'actuator_trntype', 'actuator_trnid', 'actuator_gear', 'actuator_ctrllimited', 'actuator_ctrlrange', 'actuator_gainprm', 'actuator_biasprm',
];
const OPTION_FIELDS = ['timestep', 'integrator', 'cone', 'solver', 'iterations', 'tolerance', 'ls_iterations', 'noslip_iterations', 'impratio', 'disableflags', 'enableflags'];

test('our models have the reference models\' physical figures, bit for bit', { skip: existsSync(REFERENCE_MODELS) ? false : `no reference models at ${REFERENCE_MODELS}` }, async () => {
  const files = { halfcheetah: 'half_cheetah.xml', hopper: 'hopper.xml', walker2d: 'walker2d_v5.xml' } as const;
  for (const [name, file] of Object.entries(files)) {
    const { model: ours } = await loadModel(name as keyof typeof files);
    const ref = await compileModel(readFileSync(join(REFERENCE_MODELS, file), 'utf8'), `reference ${file}`);
    const o = ours as unknown as Record<string, ArrayLike<number>>;
    const r = ref as unknown as Record<string, ArrayLike<number>>;
    for (const f of PHYSICS_FIELDS) assert.deepEqual(Array.from(o[f]!), Array.from(r[f]!), `${name}.${f}`);
    const oo = ours.opt as unknown as Record<string, unknown>;
    const ro = ref.opt as unknown as Record<string, unknown>;
    for (const f of OPTION_FIELDS) assert.deepEqual(oo[f], ro[f], `${name}.opt.${f}`);
    assert.deepEqual(Array.from(ours.opt.gravity as ArrayLike<number>), Array.from(ref.opt.gravity as ArrayLike<number>));
    assert.equal(ours.stat.meaninertia, ref.stat.meaninertia, `${name}.stat.meaninertia (scales the solver's tolerance)`);
    ref.delete();
  }
});

test('a model MuJoCo rejects is a UserError with MuJoCo\'s message', async () => {
  await expectUserErrorAsync(compileModel('<mujoco><worldbody><geom type="nope"/></worldbody></mujoco>', 'broken.xml'), 'broken.xml', "invalid keyword: 'nope'");
});

test('makeEnv: unknown names are a UserError listing the names; specs match the environments', async () => {
  await expectUserErrorAsync(makeEnv('ant'), "unknown environment 'ant'", 'halfcheetah, hopper, walker2d, pendulum');
  expectUserError(() => envSpec('Hopper-v5'), "'Hopper-v5'");
  const dims = { halfcheetah: [17, 6, 1000, 0.05], hopper: [11, 3, 1000, 0.008], walker2d: [17, 6, 1000, 0.008], pendulum: [3, 1, 200, 0.05] };
  for (const name of ENV_NAMES) {
    const env = await makeEnv(name);
    try {
      assert.equal(env.name, name);
      const [obsDim, actDim, limit, dt] = dims[name];
      assert.deepEqual([env.observationSpec.dim, env.actionSpec.dim, env.maxEpisodeSteps], [obsDim, actDim, limit]);
      assert.ok(Math.abs(env.dt - dt!) < 1e-12);
      assert.equal(env.observationSpec.low.length, obsDim);
      assert.equal(env.actionSpec.high.length, actDim);
      const obs = env.reset(0);
      assert.ok(obs instanceof Float64Array && obs.length === obsDim);
    } finally {
      env.close();
    }
  }
});

// ------------------------------------------------------------------------------------------------
// The interface.

test('seeded reset is reproducible, within the documented noise, and unseeded reset continues the stream', async () => {
  for (const name of ['halfcheetah', 'hopper', 'walker2d'] as const) {
    const env = await makeEnv(name);
    const { model } = await loadModel(name);
    const qpos0 = model.qpos0 as Float64Array;
    const a = env.reset(7);
    const sa = env.getState();
    const b = env.reset(7);
    assert.deepEqual(b, a, `${name}: same seed, same start`);
    assert.notDeepEqual(env.reset(8), a);
    const c = env.reset();
    assert.notDeepEqual(c, a, 'no seed continues the stream');
    const noise = name === 'halfcheetah' ? 0.1 : 5e-3;
    for (let i = 0; i < qpos0.length; i++) assert.ok(Math.abs(sa.qpos[i]! - qpos0[i]!) <= noise);
    if (name !== 'halfcheetah') for (const v of sa.qvel) assert.ok(Math.abs(v) <= 5e-3);
    else assert.ok(sa.qvel.some((v) => Math.abs(v) > 1e-3) && sa.qvel.every((v) => Math.abs(v) < 0.6));
    // the observation is qpos[1:] and qvel of that state
    assert.deepEqual(Array.from(a), [...Array.from(sa.qpos.subarray(1)), ...Array.from(sa.qvel)]);
    env.close();
  }
  // a second environment with the same seed starts in the same place
  const e1 = await makeEnv('walker2d');
  const e2 = await makeEnv('walker2d');
  assert.deepEqual(e1.reset(11), e2.reset(11));
  e1.close();
  e2.close();
});

test('setState / getState: a state fully determines the next step, whatever came before', async () => {
  const env = await makeEnv('hopper');
  const rng = new Rng(5, 'test');
  env.reset(1);
  for (let t = 0; t < 10; t++) env.step(randomAction(rng, env));
  const s = env.getState();
  const action = randomAction(rng, env);
  const after = env.step(action);
  // a fresh environment set to the same state does the same step, bit for bit
  const other = await makeEnv('hopper');
  const obs = other.setState(s.qpos, s.qvel);
  assert.deepEqual(Array.from(obs.subarray(0, 5)), Array.from(s.qpos.subarray(1)));
  assert.deepEqual(other.getState(), s);
  const again = other.step(action);
  assert.deepEqual(again, after);
  // and the same environment, set back to it after other steps
  for (let t = 0; t < 5; t++) env.step(randomAction(rng, env));
  env.setState(s.qpos, s.qvel);
  assert.deepEqual(env.step(action), after);
  assert.throws(() => env.setState([1, 2], s.qvel), RangeError);
  env.close();
  other.close();
});

test('cached views into the wasm heap survive memory growth', async () => {
  const action = [0.1, 0.2, 0.3, -0.1, -0.2, -0.3];
  const env = await makeEnv('halfcheetah');
  env.reset(1);
  env.step(action);
  // the env's own cached qpos view (DataViews; a private field, peeked at here only)
  const views = (env as unknown as { views: { qpos: Float64Array } }).views;
  const cached = views.qpos;
  assert.equal(cached.length, 9, 'halfcheetah nq');
  // ~1 MB of arena per copy: 48 more copies grow the wasm memory, detaching every old view
  const more: Env[] = [];
  for (let i = 0; i < 48; i++) more.push(await makeEnv('halfcheetah'));
  // the memory did grow: the view taken before is detached, so the next step must refresh it
  assert.equal(cached.length, 0, 'the wasm memory grew and detached the old view');
  assert.equal(views.qpos, cached, 'nothing refreshed the views yet');
  const s = env.step(action);
  assert.notEqual(views.qpos, cached, 'the step re-fetched the views');
  assert.equal(views.qpos.length, 9);
  const ref = await makeEnv('halfcheetah');
  ref.reset(1);
  ref.step(action);
  assert.deepEqual(s, ref.step(action));
  for (const e of [env, ref, ...more]) e.close();
});

test('timeouts are truncations, falls are terminations, and stepping past either throws', async () => {
  const rng = new Rng(6, 'test');
  // HalfCheetah never terminates: 1000 steps, then truncated
  const cheetah = await makeEnv('halfcheetah');
  cheetah.reset(1);
  for (let t = 1; t <= 1000; t++) {
    const r = cheetah.step(randomAction(rng, cheetah));
    assert.equal(r.terminated, false);
    assert.equal(r.truncated, t === 1000, `step ${t}`);
    assert.equal(cheetah.elapsedSteps, t);
  }
  assert.throws(() => cheetah.step(randomAction(rng, cheetah)), /after the episode ended/);
  cheetah.reset();
  assert.equal(cheetah.step(randomAction(rng, cheetah)).truncated, false);
  cheetah.close();
  // a shorter limit
  const short = await makeEnv('walker2d', { maxEpisodeSteps: 5 });
  short.reset(2);
  const flags = [];
  for (let t = 0; t < 5; t++) flags.push(short.step(new Float64Array(6)).truncated);
  assert.deepEqual(flags, [false, false, false, false, true]);
  short.close();
  // Hopper under full random torques falls well before the time limit: terminated, not truncated
  const hopper = await makeEnv('hopper');
  hopper.reset(3);
  let last = null;
  for (let t = 0; t < 1000; t++) {
    last = hopper.step(randomAction(rng, hopper).map((x) => Math.sign(x)));
    if (last.terminated) break;
    assert.equal(last.truncated, false);
  }
  assert.ok(last && last.terminated && !last.truncated && hopper.elapsedSteps < 1000);
  assert.ok(last.reward < 1, 'no healthy reward on the falling step');
  assert.throws(() => hopper.step([0, 0, 0]), /after the episode ended/);
  // with stepAfterDone: 'allow' it keeps simulating, still reporting terminated
  const raw = await makeEnv('hopper', { stepAfterDone: 'allow' });
  raw.setState(hopper.getState().qpos, hopper.getState().qvel);
  assert.doesNotThrow(() => raw.step([0, 0, 0]));
  hopper.close();
  raw.close();
  // bad actions
  const w = await makeEnv('walker2d');
  assert.throws(() => w.step([0, 0, 0, 0, 0, 0]), /before reset/);
  w.reset(0);
  assert.throws(() => w.step([0, 0, 0]), /needs 6 values/);
  assert.throws(() => w.step([0, 0, Number.NaN, 0, 0, 0]), /finite/);
  w.close();
});

test('observation-based termination rules agree with the environments on rollouts', async () => {
  for (const name of ['hopper', 'walker2d'] as const) {
    const env = await makeEnv(name);
    const fn = terminationFn(name);
    const rng = new Rng(9, `test/${name}`);
    const obsRows: number[] = [];
    const envFlags: number[] = [];
    let terminals = 0;
    let steps = 0;
    for (let ep = 0; ep < 60; ep++) {
      env.reset(ep);
      // a mix of gentle and violent random policies, so episodes end in every way they can
      const scale = ep % 3 === 0 ? 0.3 : 1;
      for (;;) {
        const a = randomAction(rng, env).map((x) => x * scale);
        const r = env.step(a);
        steps++;
        assert.equal(fn.isTerminal(r.observation), r.terminated, `${name} ep ${ep} step ${env.elapsedSteps}`);
        assert.equal(env.isTerminal(r.observation), r.terminated);
        const s = env.getState();
        const healthy = name === 'hopper' ? hopperIsHealthyState(s.qpos, s.qvel) : walker2dIsHealthyState(s.qpos, s.qvel);
        assert.equal(!healthy, r.terminated);
        obsRows.push(...r.observation);
        envFlags.push(r.terminated ? 1 : 0);
        if (r.terminated) terminals++;
        if (r.terminated || r.truncated) break;
      }
    }
    assert.ok(terminals >= 50 && steps > terminals * 5, `${name}: ${terminals} terminals in ${steps} steps`);
    // batched, in float64 and in float32 (the dataset dtype)
    assert.deepEqual(Array.from(fn.isTerminalBatch(Float64Array.from(obsRows))), envFlags);
    const f32 = fn.isTerminalBatch(Float32Array.from(obsRows));
    let disagree = 0;
    for (let i = 0; i < envFlags.length; i++) if (f32[i] !== envFlags[i]) disagree++;
    assert.ok(disagree <= 1, `${name}: float32 rounding flips at most a boundary case (${disagree})`);
    const out = new Uint8Array(envFlags.length + 3).fill(7);
    fn.isTerminalBatch(Float64Array.from(obsRows), out);
    assert.deepEqual(Array.from(out.subarray(0, envFlags.length)), envFlags);
    assert.throws(() => fn.isTerminalBatch(new Float32Array(5)), RangeError);
    env.close();
  }
  // the bounds are strict, as in Gymnasium (rollouts above mostly end by the angle)
  const hop = (z: number, angle: number, rest = 0) => [z, angle, rest, 0, 0, 0, 0, 0, 0, 0, 0];
  assert.deepEqual(
    [hop(0.7, 0), hop(0.7001, 0), hop(1, 0.2), hop(1, -0.2), hop(1, 0.1999), hop(1, 0, 100), hop(1, 0, 99.9), hop(Infinity, 0)].map((o) => hopperIsTerminal(o)),
    [true, false, true, true, false, true, false, true],
  );
  const walk = (z: number, angle: number) => [z, angle, ...new Array(15).fill(0)];
  assert.deepEqual(
    [walk(0.8, 0), walk(0.8001, 0), walk(2, 0), walk(1.9999, 0), walk(1.2, 1), walk(1.2, -1), walk(1.2, 0.999)].map((o) => walker2dIsTerminal(o)),
    [true, false, true, false, true, true, false],
  );
  // what the observation cannot show: Hopper's |qvel| < 100 bound on the unclipped velocities
  const qpos = [0, 1.2, 0.01, -0.1, -0.1, 0.05];
  const qvel = [0, 0, 0, 150, 0, 0];
  const obs = [...qpos.slice(1), ...qvel.map((v) => Math.max(-10, Math.min(10, v)))];
  assert.equal(hopperIsHealthyState(qpos, qvel), false);
  assert.equal(hopperIsTerminal(obs), false, 'clipped to 10, the observation looks healthy');
  // model-predicted (unclipped) observations do carry the bound; NaN is terminal
  assert.equal(hopperIsTerminal([...qpos.slice(1), ...qvel]), true);
  assert.equal(hopperIsTerminal([Number.NaN, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]), true);
  assert.equal(walker2dIsTerminal([1.2, Number.NaN, ...new Array(15).fill(0)]), true);
  assert.equal(walker2dIsTerminal([1.2, 0.5, ...new Array(15).fill(500)]), false);
  assert.equal(terminationFn('halfcheetah').isTerminal(new Float64Array(17).fill(Number.NaN)), false);
  assert.deepEqual(Array.from(terminationFn('pendulum').isTerminalBatch(new Float32Array(6))), [0, 0]);
});

test('VectorEnv: copies match single environments, auto-reset keeps the final observation', async () => {
  const n = 3;
  const vec = await makeVectorEnv('hopper', n);
  const singles: Env[] = [];
  for (let i = 0; i < n; i++) singles.push(await makeEnv('hopper'));
  const obs = vec.reset(21);
  assert.ok(obs instanceof Float32Array && obs.length === n * 11);
  for (let i = 0; i < n; i++) {
    const o = singles[i]!.reset(vectorSeed(21, i));
    assert.deepEqual(obs.subarray(i * 11, (i + 1) * 11), Float32Array.from(o));
  }
  const rng = new Rng(22, 'test');
  const actions = new Float32Array(n * 3);
  let resets = 0;
  for (let t = 0; t < 300; t++) {
    for (let j = 0; j < actions.length; j++) actions[j] = rng.uniform(-1, 1);
    const before = Float32Array.from(vec.observation);
    const r = vec.step(actions);
    for (let i = 0; i < n; i++) {
      const env = singles[i]!;
      const s = env.step(actions.subarray(i * 3, (i + 1) * 3));
      const row = (a: Float32Array) => a.subarray(i * 11, (i + 1) * 11);
      assert.deepEqual(row(r.nextObservation), Float32Array.from(s.observation));
      assert.equal(r.reward[i], Math.fround(s.reward));
      assert.equal(r.terminated[i], s.terminated ? 1 : 0);
      assert.equal(r.truncated[i], s.truncated ? 1 : 0);
      assert.equal(r.episodeLength[i], env.elapsedSteps);
      if (s.terminated || s.truncated) {
        resets++;
        // the vector copy reset itself from its continuing stream: so does the single env
        assert.deepEqual(row(r.observation), Float32Array.from(env.reset()));
        assert.notDeepEqual(row(r.observation), row(r.nextObservation));
      } else {
        assert.deepEqual(row(r.observation), row(r.nextObservation));
      }
    }
    assert.notDeepEqual(before, r.observation);
  }
  assert.ok(resets >= 3, `${resets} auto-resets`);
  assert.throws(() => vec.step(new Float32Array(2)), RangeError);
  vec.close();
  for (const e of singles) e.close();

  // truncation through the vector form, and episode returns
  const pv = await makeVectorEnv('pendulum', 2, { seed: 1, maxEpisodeSteps: 10 });
  let ret = 0;
  for (let t = 1; t <= 10; t++) {
    const r = pv.step(new Float32Array([0.5, -0.5]));
    ret += r.reward[0]!;
    assert.deepEqual(Array.from(r.truncated), t === 10 ? [1, 1] : [0, 0]);
    assert.deepEqual(Array.from(r.terminated), [0, 0]);
    if (t === 10) {
      assert.ok(Math.abs(r.episodeReturn[0]! - ret) < 1e-3);
      assert.equal(r.episodeLength[0], 10);
    }
  }
  assert.equal(pv.step(new Float32Array(2)).episodeLength[0], 1, 'a new episode after the reset');
  pv.close();
  await expectUserErrorAsync(makeVectorEnv('hopper', 0), 'positive integer');
});

test('Pendulum through the interface matches the low-level functions', async () => {
  const env = await makeEnv('pendulum');
  const obs = env.reset(5);
  const { qpos, qvel } = env.getState();
  assert.ok(Math.abs(qpos[0]!) <= Math.PI && Math.abs(qvel[0]!) <= 1);
  const state = { theta: qpos[0]!, thetaDot: qvel[0]! };
  const expected = new Float64Array(3);
  pendulumObserve(state, expected);
  assert.deepEqual(obs, expected);
  const rng = new Rng(6, 'test');
  for (let t = 1; t <= PENDULUM.timeLimit; t++) {
    const a = rng.uniform(-3, 3);
    const r = env.step([a]);
    assert.equal(r.reward, pendulumStep(state, a));
    pendulumObserve(state, expected);
    assert.deepEqual(r.observation, expected);
    assert.equal(r.terminated, false);
    assert.equal(r.truncated, t === 200);
    for (let i = 0; i < 3; i++) assert.ok(r.observation[i]! >= env.observationSpec.low[i]! && r.observation[i]! <= env.observationSpec.high[i]!);
  }
  assert.throws(() => env.step([0]), /after the episode ended/);
  assert.deepEqual(env.reset(5), obs, 'seeded reset reproducible');
  assert.deepEqual(Array.from(env.setState([Math.PI / 2], [0.5])), [Math.cos(Math.PI / 2), 1, 0.5]);
  env.close();
});

test('D4RL normalized score: 0 at the random and 100 at the expert reference return', () => {
  for (const [name, ref] of Object.entries(D4RL_REFERENCE_RETURNS)) {
    assert.equal(d4rlScore(name, ref.random), 0);
    assert.ok(Math.abs(d4rlScore(name, ref.expert) - 100) < 1e-9);
    assert.ok(Math.abs(d4rlScore({ name }, (ref.random + ref.expert) / 2) - 50) < 1e-9);
  }
  assert.ok(Math.abs(d4rlScore('hopper', 3234.3) - 100) < 1e-9);
  expectUserError(() => d4rlScore('pendulum', -200), 'no reference returns for pendulum');
  expectUserError(() => d4rlScore('ant', 0), "unknown environment 'ant'");
});
