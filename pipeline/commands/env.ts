// `mopo env check <trajectory.json>`: replays a reference trajectory in our environment and reports
// how far observations and rewards drift and whether terminations match. Exit 0 only when within
// the tolerance (1e-6) and every termination matches; 1 when the check ran and failed.
import { checkTrajectory } from '../envs/check.js';

export async function runEnvCheck(args: { trajectory: string; json: boolean }): Promise<void> {
  const r = await checkTrajectory(args.trajectory);
  const { env, steps, maxObsError, maxRewardError, terminationsMatch } = r;
  if (args.json) {
    process.stdout.write(JSON.stringify({ env, steps, maxObsError, maxRewardError, terminationsMatch, ok: r.ok, tolerance: r.tolerance }) + '\n');
  } else {
    process.stdout.write(
      `${args.trajectory}: ${env}, ${steps} steps: max |Δobs| ${maxObsError.toExponential(2)}, max |Δreward| ${maxRewardError.toExponential(2)}, ` +
        `terminations ${terminationsMatch ? 'match' : 'differ'} → ${r.ok ? 'PASS' : 'FAIL'} (tolerance ${r.tolerance})\n`,
    );
  }
  if (!r.ok) process.exitCode = 1;
}
