import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Knex } from 'knex';
import { DATABASE_BACKENDS, type TestDatabase } from '../../../test/support/databases.ts';
import { preparedQuery, preparedRaw, statementName } from '../../repositories/prepared.ts';
import { NotLiteral, sqlLiteral } from './prepared.ts';

/**
 * A prepared statement answers exactly what the same statement answers unprepared, on
 * both databases, whatever its values hold (on PGlite they travel as SQL literals), and
 * is really prepared on the connection that ran it.
 */

const HOSTILE = [
  "it's",
  'back\\slash \\\' and \\\\',
  "'); drop table chunks; --",
  '$1 ? :name @@ E\'\\x00\'',
  'многоязычный 漢字 😀',
  '',
  '"quoted" {braces} ,comma',
];
const ARRAY = ['a,b', '{x}', 'quote"', 'back\\', "it's", '', 'NULL', null];
const SQL = 'select ?::text as a, ?::text[] as b, ?::int as c, ?::boolean as d, ?::float8 as e, ?::text as f';

for (const backend of DATABASE_BACKENDS) {
  describe(`prepared statements (${backend.name})`, () => {
    let t: TestDatabase;
    before(async () => {
      t = await backend.open();
    });
    after(async () => {
      await t?.dispose();
    });

    it('answers what the statement answers unprepared, for hostile strings and arrays', async () => {
      for (const text of HOSTILE) {
        const bindings = [text, ARRAY, 42, true, 1.5, null] as Knex.RawBinding[];
        const plain = await t.db.knex.raw(SQL, bindings);
        // Twice: the first call prepares, the second only executes.
        for (let i = 0; i < 2; i++) {
          const prepared = await preparedRaw(t.db.knex, SQL, bindings);
          assert.deepEqual(prepared.rows, plain.rows, JSON.stringify(text));
        }
        assert.equal(firstRow(await preparedRaw(t.db.knex, SQL, bindings)).a, text);
      }
    });

    it('is prepared on the connection that ran it, a transaction included', async () => {
      const sql = 'select count(*)::int as n from tenants where id = ?';
      await t.db.knex.transaction(async (trx) => {
        await preparedRaw(trx, sql, ['x']);
        await preparedRaw(trx, sql, ['y']);
        const { rows } = await trx.raw('select name from pg_prepared_statements');
        assert.ok(
          (rows as Array<{ name: string }>).some((r) => r.name === statementName(sql)),
          `${statementName(sql)} among ${JSON.stringify(rows)}`,
        );
      });
    });

    // PGlite is one session: a statement it lost (DEALLOCATE) is prepared again. (node-pg
    // keeps its own list per connection; nothing of ragmesh deallocates.)
    it('prepares again a statement the session lost', { skip: backend.name !== 'pglite' }, async () => {
      const sql = 'select ?::text as a';
      assert.equal(firstRow(await preparedRaw(t.db.knex, sql, ['one'])).a, 'one');
      await t.db.knex.raw('deallocate all');
      assert.equal(firstRow(await preparedRaw(t.db.knex, sql, ['two'])).a, 'two');
    });

    it('reports a statement error as the unprepared statement does', async () => {
      await assert.rejects(preparedRaw(t.db.knex, 'select ?::int as n', ['not a number']), /invalid input syntax for type integer/);
      await assert.rejects(preparedQuery(t.db.knex, 'select ?::int as n', ['not a number']), /invalid input syntax for type integer/);
    });

    // On PostgreSQL preparedQuery skips knex (its own placeholders, node-pg directly); on
    // PGlite and in a transaction it is preparedRaw. Same statement name either way.
    it('preparedQuery answers what preparedRaw answers, inside a transaction too', async () => {
      for (const text of HOSTILE) {
        const bindings = [text, ARRAY, 42, true, 1.5, null] as Knex.RawBinding[];
        const plain = await t.db.knex.raw(SQL, bindings);
        for (let i = 0; i < 2; i++) assert.deepEqual((await preparedQuery(t.db.knex, SQL, bindings)).rows, plain.rows, JSON.stringify(text));
        assert.deepEqual((await preparedRaw(t.db.knex, SQL, bindings)).rows, plain.rows);
      }
      await t.db.knex.transaction(async (trx) => {
        assert.equal(firstRow(await preparedQuery(trx, 'select ?::text || ?::text as a', ['x', 'y'])).a, 'xy');
      });
    });
  });
}

describe('SQL literals for EXECUTE (PGlite)', () => {
  it('quotes strings by doubling quotes only, and writes arrays as array literals', () => {
    assert.equal(sqlLiteral("it's \\ fine"), "'it''s \\ fine'");
    assert.equal(sqlLiteral(['a"b', 'c\\d', null, 3]), `'{"a\\"b","c\\\\d",NULL,3}'`);
    assert.equal(sqlLiteral(null), 'NULL');
    assert.equal(sqlLiteral(7), "'7'");
    assert.equal(sqlLiteral(false), "'false'");
  });

  it('refuses what it cannot write, so the statement runs unprepared', () => {
    for (const value of ['nul\0byte', Number.NaN, Infinity, { a: 1 }, new Date(0), [[1]], Buffer.from('x')]) {
      assert.throws(() => sqlLiteral(value), NotLiteral, String(value));
    }
  });
});

/** The first row of a raw result. */
function firstRow(result: { rows: Array<Record<string, unknown>> }): Record<string, unknown> {
  return result.rows[0]!;
}
