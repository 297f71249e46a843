import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../pipeline/random.js';

test('fillNormal draws exactly what normal() per element draws (spare pending or not, odd or even lengths)', () => {
  for (const lead of [0, 1, 2]) {
    for (const n of [0, 1, 2, 7, 1000]) {
      const a = new Rng(5, 'x');
      const b = new Rng(5, 'x');
      for (let k = 0; k < lead; k++) assert.equal(a.normal(), b.normal());
      const fast = a.fillNormal(new Float32Array(n), 0.5, 2);
      const slow = Float32Array.from({ length: n }, () => 0.5 + 2 * b.normal());
      assert.deepEqual(fast, slow, `lead ${lead}, n ${n}`);
      assert.equal(a.normal(), b.normal(), 'the streams continue identically');
    }
  }
});

test('fillTruncatedNormal: N(0, σ²) redrawn beyond ±2σ (the moments of the truncated normal), seeded', () => {
  const n = 200_000;
  const x = new Rng(9, 't').fillTruncatedNormal(new Float32Array(n), 0.5);
  assert.deepEqual(new Rng(9, 't').fillTruncatedNormal(new Float32Array(n), 0.5), x, 'one seed, one draw');
  let s = 0, s2 = 0, within1 = 0, max = 0;
  for (const v of x) {
    s += v;
    s2 += v * v;
    if (Math.abs(v) <= 0.5) within1++;
    max = Math.max(max, Math.abs(v));
  }
  assert.ok(max <= 1 && max > 0.99, `max |x| ${max} (2σ = 1)`);
  assert.ok(Math.abs(s / n) < 0.005, `mean ${s / n}`);
  // Var of N(0, 1) cut at ±2: 1 − 4φ(2)/(2Φ(2) − 1) = 0.77372; P(|z| ≤ 1 | |z| ≤ 2) = 0.68269/0.95450.
  assert.ok(Math.abs(s2 / n / 0.25 / 0.77372 - 1) < 0.01, `variance ${s2 / n}, expected ${0.25 * 0.77372}`);
  assert.ok(Math.abs(within1 / n - 0.68269 / 0.9545) < 0.005, `within 1σ ${within1 / n}`);
});
