// The classic pendulum swing-up (Gymnasium Pendulum-v1 dynamics) in plain TypeScript: a fast,
// dependency-free environment for tests and for the built-in default dataset.

export const PENDULUM = {
  name: 'pendulum',
  obsDim: 3,
  actDim: 1,
  maxSpeed: 8,
  maxTorque: 2,
  dt: 0.05,
  g: 10,
  m: 1,
  l: 1,
  timeLimit: 200,
} as const;

export interface PendulumState {
  theta: number;
  thetaDot: number;
}

function angleNormalize(x: number): number {
  return ((((x + Math.PI) % (2 * Math.PI)) + 2 * Math.PI) % (2 * Math.PI)) - Math.PI;
}

/** Observation [cos θ, sin θ, θ̇] written into `out` at `offset`. */
export function pendulumObserve(s: PendulumState, out: Float32Array, offset = 0): void {
  out[offset] = Math.cos(s.theta);
  out[offset + 1] = Math.sin(s.theta);
  out[offset + 2] = s.thetaDot;
}

/** One step: returns the reward and advances the state in place. The pendulum never terminates. */
export function pendulumStep(s: PendulumState, action: number): number {
  const { g, m, l, dt, maxSpeed, maxTorque } = PENDULUM;
  const u = Math.min(maxTorque, Math.max(-maxTorque, action));
  const th = s.theta;
  const thdot = s.thetaDot;
  const cost = angleNormalize(th) ** 2 + 0.1 * thdot * thdot + 0.001 * u * u;
  let newThdot = thdot + ((3 * g) / (2 * l) * Math.sin(th) + (3 / (m * l * l)) * u) * dt;
  newThdot = Math.min(maxSpeed, Math.max(-maxSpeed, newThdot));
  s.theta = th + newThdot * dt;
  s.thetaDot = newThdot;
  return -cost;
}
