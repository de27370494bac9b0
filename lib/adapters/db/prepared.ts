/**
 * Named statements (lib/repositories/prepared.ts) on PGlite. Its query API has no named
 * statements, so the first call of a name sends `PREPARE`, and every call `EXECUTE` with
 * the values written as SQL literals (`sqlLiteral`), on the connection knex acquired for
 * the statement (a transaction's, inside one). PostgreSQL needs nothing here: node-pg
 * prepares a statement given a `name` itself, once per connection.
 */

/** A value that cannot be written as an SQL literal here: the statement runs unprepared. */
export class NotLiteral extends Error {}

const quote = (s: string): string => {
  // PostgreSQL never stores NUL in text; refused rather than cut.
  if (s.includes('\0')) throw new NotLiteral('NUL in a string');
  // With standard_conforming_strings on (checked before any use), a backslash is an
  // ordinary character and a doubled quote the only escape.
  return `'${s.replaceAll("'", "''")}'`;
};

const arrayElement = (v: unknown): string => {
  if (v === null || v === undefined) return 'NULL';
  if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  if (typeof v === 'string') return `"${v.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
  throw new NotLiteral(`array element of type ${typeof v}`);
};

/**
 * One bound value as an SQL literal of unknown type, which EXECUTE casts to the
 * statement's parameter type, as a bound value would be: strings, finite numbers,
 * booleans, null, and flat arrays of strings or numbers (an array literal).
 */
export function sqlLiteral(value: unknown): string {
  if (value === null || value === undefined) return 'NULL';
  if (typeof value === 'string') return quote(value);
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new NotLiteral(`number ${value}`);
    return quote(String(value));
  }
  if (typeof value === 'bigint') return quote(String(value));
  if (typeof value === 'boolean') return value ? "'true'" : "'false'";
  if (Array.isArray(value)) return quote(`{${value.map(arrayElement).join(',')}}`);
  throw new NotLiteral(`value of type ${typeof value}`);
}

/** What the PGlite side needs of a PGlite instance. */
interface PgliteLike {
  query(sql: string, params?: unknown[], options?: unknown): Promise<unknown>;
}

/** Statements prepared on each PGlite instance (one session each), by name. */
const preparedOn = new WeakMap<object, Map<string, Promise<void>>>();
const conforming = new WeakMap<object, Promise<boolean>>();

/**
 * Runs `sql` (with `$n` placeholders) as the prepared statement `name` on PGlite, or
 * returns null when it has to run unprepared (a value that is no literal, or a session
 * without standard_conforming_strings).
 */
export async function queryPreparedPglite(pglite: PgliteLike, name: string, sql: string, bindings: readonly unknown[]): Promise<unknown | null> {
  let literals: string[];
  try {
    literals = bindings.map(sqlLiteral);
  } catch (err) {
    if (err instanceof NotLiteral) return null;
    throw err;
  }
  let checked = conforming.get(pglite);
  if (!checked) {
    checked = pglite.query('show standard_conforming_strings').then((r) => (r as { rows: Array<{ standard_conforming_strings: string }> }).rows[0]?.standard_conforming_strings === 'on');
    conforming.set(pglite, checked);
  }
  if (!(await checked)) return null;
  let statements = preparedOn.get(pglite);
  if (!statements) preparedOn.set(pglite, (statements = new Map()));
  const execute = `execute ${name}${literals.length ? `(${literals.join(', ')})` : ''}`;
  for (let attempt = 0; ; attempt++) {
    let preparing = statements.get(name);
    if (!preparing) {
      preparing = pglite.query(`prepare ${name} as ${sql}`).then(
        () => undefined,
        (err: { code?: string }) => {
          // Prepared already in this session (by a call whose promise was dropped): usable.
          if (err?.code === '42P05') return;
          statements.delete(name);
          throw err;
        },
      );
      statements.set(name, preparing);
    }
    await preparing;
    try {
      return await pglite.query(execute);
    } catch (err) {
      // Gone from the session (DEALLOCATE, a restored data directory): prepared again, once.
      if ((err as { code?: string })?.code === '26000' && attempt === 0) {
        statements.delete(name);
        continue;
      }
      throw err;
    }
  }
}
