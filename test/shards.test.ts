import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, writeFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { from, lastValueFrom, toArray } from 'rxjs';
import { TransitionBatch } from '../schemas/transition.js';
import { readManifest, readShards, writeShards } from '../operators/shards.js';
import { UserError } from '../pipeline/errors.js';
import { Rng } from '../pipeline/random.js';

function randomBatch(rng: Rng, n: number, episodeBase = 0): TransitionBatch {
  const b = TransitionBatch.allocate({ obsDim: 5, actDim: 2, env: 'test' }, n, ['episode', 'step']);
  rng.fillNormal(b.observation);
  rng.fillNormal(b.nextObservation);
  rng.fillUniform(b.action, -1, 1);
  rng.fillNormal(b.reward);
  for (let i = 0; i < n; i++) {
    b.terminal[i] = rng.next() < 0.1 ? 1 : 0;
    b.timeout[i] = rng.next() < 0.05 ? 1 : 0;
    b.episode![i] = episodeBase + (i >> 4);
    b.step![i] = i & 15;
  }
  return b;
}

async function tempDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'mopo-shards-'));
}

test('shards round-trip every value, split by rowsPerShard, with a manifest', async () => {
  const dir = await tempDir();
  try {
    const rng = new Rng(1, 'shards');
    const batches = [randomBatch(rng, 100), randomBatch(rng, 37, 10), randomBatch(rng, 250, 20)];
    const manifest = await lastValueFrom(from(batches).pipe(writeShards({ dir, stage: 'test', config: { a: 1 }, rowsPerShard: 120 })));
    assert.equal(manifest.rows, 387);
    assert.equal(manifest.complete, true);
    assert.deepEqual(manifest.shards.map((s) => s.rows), [137, 250]);
    assert.equal(manifest.schema?.obsDim, 5);
    assert.equal(manifest.schema?.env, 'test');
    const files = (await readdir(dir)).sort();
    assert.deepEqual(files, ['manifest.json', 'shard-00000.arrow', 'shard-00001.arrow'], 'no temporary files are left');

    const back = await lastValueFrom(readShards(dir).pipe(toArray()));
    const all = TransitionBatch.concat(back);
    const want = TransitionBatch.concat(batches);
    assert.equal(all.length, want.length);
    assert.deepEqual(all.observation, want.observation);
    assert.deepEqual(all.nextObservation, want.nextObservation);
    assert.deepEqual(all.action, want.action);
    assert.deepEqual(all.reward, want.reward);
    assert.deepEqual(all.terminal, want.terminal);
    assert.deepEqual(all.timeout, want.timeout);
    assert.deepEqual(all.episode, want.episode);
    assert.deepEqual(all.step, want.step);
    assert.equal(all.env, 'test');

    // cold: a second subscription reads the files again
    const again = await lastValueFrom(readShards(dir).pipe(toArray()));
    assert.equal(TransitionBatch.concat(again).length, 387);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a changed shard fails its checksum with a message naming the file', async () => {
  const dir = await tempDir();
  try {
    const rng = new Rng(2, 'shards');
    await lastValueFrom(from([randomBatch(rng, 64)]).pipe(writeShards({ dir, stage: 'test' })));
    const path = join(dir, 'shard-00000.arrow');
    const bytes = await readFile(path);
    bytes[bytes.length >> 1] ^= 0xff;
    await writeFile(path, bytes);
    await assert.rejects(lastValueFrom(readShards(dir).pipe(toArray())), (e: unknown) => {
      assert.ok(e instanceof UserError);
      assert.match(e.message, /shard-00000\.arrow: checksum mismatch/);
      return true;
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('an incomplete or missing manifest is refused', async () => {
  const dir = await tempDir();
  try {
    await assert.rejects(readManifest(dir), (e: unknown) => e instanceof UserError && /cannot read the shard manifest/.test(e.message));
    const rng = new Rng(3, 'shards');
    await lastValueFrom(from([randomBatch(rng, 10)]).pipe(writeShards({ dir, stage: 'test' })));
    const mpath = join(dir, 'manifest.json');
    const m = JSON.parse(await readFile(mpath, 'utf8'));
    m.complete = false;
    await writeFile(mpath, JSON.stringify(m));
    await assert.rejects(readManifest(dir), (e: unknown) => e instanceof UserError && /incomplete/.test(e.message));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a shard whose schema differs from the manifest is refused', async () => {
  const dir = await tempDir();
  const other = await tempDir();
  try {
    const rng = new Rng(4, 'shards');
    await lastValueFrom(from([randomBatch(rng, 10)]).pipe(writeShards({ dir, stage: 'test' })));
    // a valid shard of other dims, with the manifest's checksum updated to match it
    const b = TransitionBatch.allocate({ obsDim: 3, actDim: 2 }, 10);
    await lastValueFrom(from([b]).pipe(writeShards({ dir: other, stage: 'test' })));
    const foreign = await readFile(join(other, 'shard-00000.arrow'));
    await writeFile(join(dir, 'shard-00000.arrow'), foreign);
    const mpath = join(dir, 'manifest.json');
    const m = JSON.parse(await readFile(mpath, 'utf8'));
    const om = JSON.parse(await readFile(join(other, 'manifest.json'), 'utf8'));
    m.shards[0].sha256 = om.shards[0].sha256;
    m.shards[0].bytes = om.shards[0].bytes;
    await writeFile(mpath, JSON.stringify(m));
    await assert.rejects(lastValueFrom(readShards(dir).pipe(toArray())), (e: unknown) => e instanceof UserError && /schema differs from the manifest/.test(e.message));
  } finally {
    await rm(dir, { recursive: true, force: true });
    await rm(other, { recursive: true, force: true });
  }
});

test('batches of different dims in one shard set are an error', async () => {
  const dir = await tempDir();
  try {
    const a = TransitionBatch.allocate({ obsDim: 3, actDim: 2 }, 4);
    const b = TransitionBatch.allocate({ obsDim: 4, actDim: 2 }, 4);
    await assert.rejects(lastValueFrom(from([a, b]).pipe(writeShards({ dir, stage: 'mixed' }))), /one shard set holds one schema/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('an error mid-stream leaves no shard set behind; a new set replaces an old one whole', async () => {
  const { concat, throwError } = await import('rxjs');
  const { existsSync } = await import('node:fs');
  const root = await tempDir();
  const dir = join(root, 'set');
  try {
    const rng = new Rng(6, 'shards');
    const failing = concat(from([randomBatch(rng, 50), randomBatch(rng, 50)]), throwError(() => new UserError('bad row 77')));
    await assert.rejects(lastValueFrom(failing.pipe(writeShards({ dir, stage: 'test', rowsPerShard: 40 }))), /bad row 77/);
    assert.equal(existsSync(dir), false, 'the partial set and its directory are removed');

    await lastValueFrom(from([30, 30, 30, 30].map((n) => randomBatch(rng, n))).pipe(writeShards({ dir, stage: 'first', rowsPerShard: 30 })));
    assert.equal((await readdir(dir)).length, 5);
    await lastValueFrom(from([randomBatch(rng, 20)]).pipe(writeShards({ dir, stage: 'second' })));
    assert.deepEqual((await readdir(dir)).sort(), ['manifest.json', 'shard-00000.arrow']);
    assert.equal((await readManifest(dir)).stage, 'second');
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
