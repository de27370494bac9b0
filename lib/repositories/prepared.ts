import { createHash } from 'node:crypto';
import type { Knex } from 'knex';

/**
 * Statements a request runs every time (a search's statistics and its hits), run as
 * prepared statements: parsed once per connection, and planned once PostgreSQL's plan
 * cache settles on a generic plan, instead of both on every call.
 *
 * Why: planning was most of their cost. Measured on the 100k-chunk bench corpus, a
 * search's two statements took PostgreSQL 2.3 ms of CPU unprepared and 1.3–1.4 prepared;
 * on PGlite 2.4 + 5.2 ms (p50) of the embedded node's only thread, 0.9 + 2.2 prepared.
 *
 * The name travels in knex's `.options()`: node-pg prepares a statement given a `name`
 * on each connection the first time it runs there; the PGlite client does the same with
 * PREPARE and EXECUTE (lib/adapters/db/prepared.ts).
 */

const names = new Map<string, string>();

/** The statement's name: from its text, so two texts never share one (node-pg refuses that). */
export function statementName(sql: string): string {
  let name = names.get(sql);
  if (!name) {
    name = `rm_${createHash('sha256').update(sql).digest('hex').slice(0, 24)}`;
    // Few distinct texts are ever asked for; the bound only stops a caller that builds them freely.
    if (names.size < 1_000) names.set(sql, name);
  }
  return name;
}

/** `knex.raw(sql, bindings)`, run as a prepared statement by either database. */
export function preparedRaw(knex: Knex | Knex.Transaction, sql: string, bindings: readonly Knex.RawBinding[]): Knex.Raw {
  return knex.raw(sql, bindings as Knex.RawBinding[]).options({ name: statementName(sql) });
}
