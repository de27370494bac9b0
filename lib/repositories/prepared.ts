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

/** The statement's text with knex's `?` placeholders as PostgreSQL's `$1, $2…`, or null when it holds `??` or `\?` (knex's identifier and escape). */
const positional = new Map<string, string | null>();
function positionalText(sql: string): string | null {
  let text = positional.get(sql);
  if (text === undefined) {
    let n = 0;
    text = sql.includes('??') || sql.includes('\\?') ? null : sql.replace(/\?/g, () => `$${++n}`);
    if (positional.size < 1_000) positional.set(sql, text);
  }
  return text;
}

interface PreparedClient {
  /** PostgreSQL's client (lib/adapters/db/database.ts): runs a named statement on a pooled connection. */
  queryPrepared?(name: string, text: string, values: readonly unknown[]): Promise<{ rows: Array<Record<string, unknown>> }>;
}

/**
 * `preparedRaw`'s rows, and on PostgreSQL outside a transaction without knex's builder
 * and runner: the same named statement, its text as knex would send it, handed to
 * node-pg on a connection of knex's pool (errors classified as knex's are). For the
 * statements every chat answer runs (about 50–80 µs of the api's CPU each, docs/sse.md).
 * PGlite and transactions take preparedRaw's path.
 */
export function preparedQuery(knex: Knex | Knex.Transaction, sql: string, bindings: readonly Knex.RawBinding[]): Promise<{ rows: Array<Record<string, unknown>> }> {
  const client = knex.client as PreparedClient;
  const text = client.queryPrepared && !(knex as { isTransaction?: boolean }).isTransaction ? positionalText(sql) : null;
  if (text !== null) return client.queryPrepared!(statementName(sql), text, bindings);
  return preparedRaw(knex, sql, bindings).then((result: { rows: Array<Record<string, unknown>> }) => result);
}
