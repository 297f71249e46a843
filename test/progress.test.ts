// The progress bar's line: rate and ETA from the work done since it started (a resumed run does not
// look fast), slow work as time per unit, no ETA without a total.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ProgressBar } from '../pipeline/progress.js';

function fakeBar(opts: { total?: number; initial?: number; unit: string }) {
  const lines: string[] = [];
  let t = 0;
  const stream = { isTTY: false, write: (s: string) => (lines.push(s.trimEnd()), true) } as unknown as NodeJS.WriteStream;
  const bar = new ProgressBar({ label: 'job', ...opts, stream, clock: () => t });
  return { bar, lines, advance: (seconds: number) => (t += seconds * 1000) };
}

test('progress: a resumed run counts only its own work; ETA from that rate', () => {
  const { bar, lines, advance } = fakeBar({ total: 100, initial: 40, unit: 'epochs' });
  advance(20);
  bar.update(50); // 10 epochs in 20 s since the resume: 0.5 epochs/s, 50 left → 100 s
  assert.equal(lines.at(-1), 'job [############------------]  50% 50/100 epochs ETA 1m40s 0.5 epochs/s 20.0s');
});

test('progress: slow work shows time per unit; without a total, no bar and no ETA', () => {
  const { bar, lines, advance } = fakeBar({ unit: 'epochs', initial: 16 });
  advance(540);
  bar.update(18, 'best 0.01'); // 2 epochs in 9 min
  assert.equal(lines.at(-1), 'job 18 epochs 4m30s/epoch 9m00s best 0.01');
  bar.finish('done');
  assert.equal(lines.at(-1), 'job 18 epochs 4m30s/epoch 9m00s done');
});

test('progress: work stopped early ends the bar where it got to, not full', () => {
  const { bar, lines, advance } = fakeBar({ total: 1000, initial: 170, unit: 'epochs' });
  advance(100);
  bar.update(239);
  bar.finish('stopped', { complete: false });
  assert.match(lines.at(-1)!, /^job \[######------------------\]  24% 239\/1000 epochs .* stopped$/);
  const done = fakeBar({ total: 10, unit: 'steps' });
  done.advance(1);
  done.bar.update(9);
  done.bar.finish('done');
  assert.match(done.lines.at(-1)!, /^job \[#{24}\] 100% 10\/10 steps /, 'finished work ends full');
});
