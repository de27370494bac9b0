import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { migrateLatest, openDatabase, type Database } from './database.ts';
import { tempDir } from '../../../test/support/services.ts';

/**
 * PGlite on its own thread answers as PGlite on the caller's does: the same rows and
 * types, PostgreSQL's error fields, transactions that commit or roll back whole, and a
 * dump of its data directory. Each case runs on both threadings and compares.
 */
const THREADINGS = ['worker', 'main'] as const;

describe('PGlite on its own thread', () => {
  const dbs = new Map<(typeof THREADINGS)[number], Database>();
  const disposals: Array<() => Promise<void>> = [];
  before(async () => {
    for (const threading of THREADINGS) {
      const dir = await tempDir(`ragmesh-pglite-${threading}-`);
      const db = await openDatabase({ db: { driver: 'pglite', url: null, poolMax: 1, migrateOnStart: true, pgliteThread: threading }, dataDir: dir.value });
      await migrateLatest(db);
      await db.knex.raw('create table thread_probe (id int primary key, at timestamptz, big bigint, bytes bytea, doc jsonb, words text[])');
      dbs.set(threading, db);
      disposals.push(async () => {
        await db.close();
        await dir.dispose();
      });
    }
  });
  after(async () => {
    for (const dispose of disposals) await dispose();
  });

  it('returns the same rows and value types on both threads', async () => {
    const rows = new Map<string, unknown>();
    for (const [threading, db] of dbs) {
      await db.knex('thread_probe').insert({ id: 1, at: new Date('2026-12-03T10:00:00Z'), big: '9007199254740993', bytes: Buffer.from([0, 1, 255]), doc: { a: [1, 'x'] }, words: ['a,b', "it's"] });
      const got = await db.knex('thread_probe').where({ id: 1 }).first();
      assert.ok(got.at instanceof Date, `${threading}: timestamptz is a Date`);
      assert.ok(got.bytes instanceof Uint8Array, `${threading}: bytea is bytes`);
      rows.set(threading, { ...got, bytes: [...got.bytes] });
    }
    assert.deepEqual(rows.get('worker'), rows.get('main'));
    assert.deepEqual((rows.get('worker') as { doc: unknown }).doc, { a: [1, 'x'] });
  });

  it("keeps PostgreSQL's error fields (code, detail, constraint)", async () => {
    const errors = new Map<string, Record<string, unknown>>();
    for (const [threading, db] of dbs) {
      const err = (await db.knex('thread_probe').insert({ id: 1 }).then(
        () => assert.fail(`${threading}: a duplicate key was accepted`),
        (e: unknown) => e,
      )) as Record<string, unknown>;
      assert.ok(err instanceof Error);
      errors.set(threading, { code: err.code, detail: err.detail, constraint: err.constraint, table: err.table });
    }
    assert.equal(errors.get('worker')!.code, '23505');
    assert.deepEqual(errors.get('worker'), errors.get('main'));
  });

  it('commits a transaction whole and rolls a failed one back whole, with other statements waiting', async () => {
    for (const [threading, db] of dbs) {
      await assert.rejects(
        db.knex.transaction(async (trx) => {
          await trx('thread_probe').insert({ id: 10 });
          await trx('thread_probe').insert({ id: 10 });
        }),
        { code: '23505' },
      );
      // Started together: the transaction holds knex's one connection, the count waits for it.
      const [, count] = await Promise.all([
        db.knex.transaction(async (trx) => {
          await trx('thread_probe').insert({ id: 11 });
          await trx('thread_probe').insert({ id: 12 });
        }),
        db.knex('thread_probe').whereIn('id', [10, 11, 12]).count({ n: '*' }).first(),
      ]);
      assert.deepEqual(
        (await db.knex('thread_probe').whereIn('id', [10, 11, 12]).orderBy('id').select('id')).map((r) => r.id),
        [11, 12],
        threading,
      );
      assert.ok([0, 2].includes(Number(count!.n)), `${threading}: the count saw the transaction half done (${count!.n})`);
    }
  });

  it('dumps its data directory as a gzipped tarball', async () => {
    const db = dbs.get('worker')!;
    await db.pglite!.exec('CHECKPOINT');
    const tarball = gunzipSync(Buffer.from(await (await db.pglite!.dumpDataDir('gzip')).arrayBuffer()));
    // A POSIX tar names its first file at offset 0 and says "ustar" at 257.
    assert.equal(tarball.subarray(257, 262).toString(), 'ustar');
    assert.ok(tarball.length > 1_000_000);
  });

  it('refuses statements once closed', async () => {
    const dir = await tempDir('ragmesh-pglite-closing-');
    const db = await openDatabase({ db: { driver: 'pglite', url: null, poolMax: 1, migrateOnStart: false, pgliteThread: 'worker' }, dataDir: dir.value });
    assert.deepEqual((await db.knex.raw('select 1 as one')).rows, [{ one: 1 }]);
    await db.close();
    await assert.rejects(db.knex.raw('select 1'));
    await dir.dispose();
  });
});
