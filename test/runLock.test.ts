import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync, existsSync } from 'node:fs';
import { tmpdir, hostname } from 'node:os';
import { join, dirname } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { acquireRunLock, sweepKilledRun, LOCK_FILE } from '../pipeline/runLock.js';
import { UserError } from '../pipeline/errors.js';

const deadPid = () => spawnSync(process.execPath, ['-e', '0']).pid!;

test('run lock: a live holder is refused by pid, a stale lock is taken over, release removes it', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mopo-lock-'));
  try {
    const lock = acquireRunLock(dir);
    assert.ok(existsSync(join(dir, LOCK_FILE)));
    // Another process (a child) must be refused while we hold it.
    const mod = join(dirname(fileURLToPath(import.meta.url)), '..', 'pipeline', 'runLock.js');
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', `import { acquireRunLock } from ${JSON.stringify(mod)}; try { acquireRunLock(${JSON.stringify(dir)}); console.log('acquired'); } catch (e) { console.log(e.message); }`], { encoding: 'utf8' });
    assert.match(r.stdout, new RegExp(`in use by another mopo process \\(pid ${process.pid}`));
    lock.release();
    assert.ok(!existsSync(join(dir, LOCK_FILE)));
    // A lock left by a killed run.
    const pid = deadPid();
    writeFileSync(join(dir, LOCK_FILE), JSON.stringify({ pid, host: hostname(), started: '2026-01-01T00:00:00Z' }));
    const logs: string[] = [];
    const again = acquireRunLock(dir, (m) => logs.push(m));
    assert.equal(again.stale?.pid, pid);
    assert.match(logs.join('\n'), new RegExp(`stale lock of pid ${pid}`));
    again.release();
    writeFileSync(join(dir, LOCK_FILE), JSON.stringify({ pid: 1, host: 'elsewhere', started: 'x' }));
    assert.throws(() => acquireRunLock(dir), (e: unknown) => e instanceof UserError && /locked by pid 1 on elsewhere/.test(e.message));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('sweepKilledRun removes temporary files of dead writers, unreferenced checkpoints, unfinished swaps and cut-off rounds', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mopo-sweep-'));
  try {
    const pid = deadPid();
    mkdirSync(join(dir, 'checkpoints', 'epoch-000009'), { recursive: true });
    mkdirSync(join(dir, 'checkpoints', 'epoch-000019'), { recursive: true });
    writeFileSync(join(dir, 'checkpoints', 'latest.json'), JSON.stringify({ checkpoint: 'epoch-000009' }));
    writeFileSync(join(dir, `.metrics.jsonl.tmp-${pid}-abc`), 'half');
    writeFileSync(join(dir, `.mine.tmp-${process.pid}-abc`), 'in use by this process');
    mkdirSync(join(dir, 'dynamics', 'checkpoint.new'), { recursive: true });
    mkdirSync(join(dir, 'stages', 'rollout', 'round-000003'), { recursive: true });
    writeFileSync(join(dir, 'stages', 'rollout', 'round-000003', 'manifest.json'), JSON.stringify({ complete: false }));
    mkdirSync(join(dir, 'stages', 'rollout', 'round-000002'), { recursive: true });
    writeFileSync(join(dir, 'stages', 'rollout', 'round-000002', 'manifest.json'), JSON.stringify({ complete: true }));
    const removed = sweepKilledRun(dir).map((p) => p.slice(dir.length + 1)).sort();
    assert.deepEqual(removed, [`.metrics.jsonl.tmp-${pid}-abc`, 'checkpoints/epoch-000019', 'dynamics/checkpoint.new', 'stages/rollout/round-000003'].sort());
    assert.ok(existsSync(join(dir, 'checkpoints', 'epoch-000009')));
    assert.ok(existsSync(join(dir, `.mine.tmp-${process.pid}-abc`)));
    assert.ok(existsSync(join(dir, 'stages', 'rollout', 'round-000002')));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
