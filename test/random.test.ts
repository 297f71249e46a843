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
