import { EventEmitter } from 'node:events';
import type { Knex } from 'knex';
import type { Logger } from 'pino';
import { SEARCH_TABLES, SearchRepository, type SearchTable, type SearchTableState } from '../repositories/search.ts';

/**
 * Broadcast when chunk rows go outside ingest (a document deleted through the api):
 * the ingest services, which own the upkeep, check after it.
 */
export const SEARCH_TABLES_CHANGED_EVENT = 'search.tables-changed';

export const UPKEEP_ANALYZE = { base: 50, fraction: 0.1 } as const;
export const UPKEEP_VACUUM = { base: 1000, fraction: 0.2, allVisibleBelow: 0.5 } as const;

export interface UpkeepOutcome {
  analyzed: SearchTable[];
  vacuumed: SearchTable[];
  autovacuum: boolean;
}

/** What a check decides for each table, from its state (exported for tests). */
export function upkeepNeeds(state: SearchTableState, autovacuum: boolean): { analyze: boolean; vacuum: boolean } {
  const known = Math.max(state.plannedRows, 0);
  const vacuum =
    !autovacuum &&
    state.pages > 0 &&
    (state.changedSinceVacuum > UPKEEP_VACUUM.base + UPKEEP_VACUUM.fraction * known || state.allVisiblePages < UPKEEP_VACUUM.allVisibleBelow * state.pages);
  const analyze = (state.pages > 0 && !state.hasStatistics) || state.modifiedSinceAnalyze > UPKEEP_ANALYZE.base + UPKEEP_ANALYZE.fraction * known;
  return { analyze: analyze || vacuum, vacuum };
}

/**
 * Keeps the planner's statistics and the visibility map of the lexical leg's tables
 * (search_postings, search_terms, chunks) and of the documents every hit joins fresh
 * where nothing else does.
 *
 * Why: PGlite runs no autovacuum, nor does a PostgreSQL with autovacuum off, and even
 * with it the first autoanalyze comes up to a minute after a bulk ingest. Without
 * column statistics every estimate is a default; without a vacuum the index-only
 * scans of the posting table fetch the heap row of every posting (at 100k chunks on
 * PGlite, 1 s a query instead of 40 ms). The lexical SQL is written so that its plan
 * does not depend on statistics (SearchRepository.bm25Postings), but the rest of the
 * speed does.
 *
 * When: ingest calls `noteWrites()` after each commit of chunk rows (and on
 * SEARCH_TABLES_CHANGED_EVENT, after a document delete); a check follows
 * `debounceMs` later (one check for the documents of that while, however many) and at
 * `start()`. A check reads pg_class and the cumulative statistics and, per table, with
 * autovacuum's default thresholds:
 * - ANALYZE when it has rows but no column statistics (never analyzed, or lost), or
 *   when more rows changed since the last analyze than 50 + 10 % of what the planner
 *   knows;
 * - VACUUM (ANALYZE), only where no autovacuum runs, when more rows were inserted or
 *   died since the last vacuum than 1,000 + 20 % of it, or when under half its pages
 *   are marked all-visible.
 * Only one check runs at a time in a process; SKIP_LOCKED leaves a table another
 * process is analyzing to that process.
 */
export class SearchTablesUpkeep extends EventEmitter<{ checked: [UpkeepOutcome]; failed: [unknown] }> {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<UpkeepOutcome> | null = null;
  /** Writes noted while a check ran: they need a check of their own after it. */
  private again = false;
  private closed = false;

  constructor(private readonly deps: { knex: () => Promise<Knex>; logger?: Logger; debounceMs?: number }) {
    super();
  }

  /** Checks at once (startup: statistics may never have been gathered). */
  start(): void {
    void this.check().catch(() => undefined);
  }

  /** Chunk rows were committed: check once the burst is over. */
  noteWrites(): void {
    if (this.closed) return;
    if (this.running) {
      this.again = true;
      return;
    }
    // Not reset by later writes: a long bulk ingest still gets a check every debounceMs.
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.check().catch(() => undefined);
    }, this.deps.debounceMs ?? 2000);
    this.timer.unref();
  }

  /** One check now (or the one already running); emits `checked` or `failed`. */
  check(): Promise<UpkeepOutcome> {
    if (this.running) return this.running;
    this.running = this.run().finally(() => {
      this.running = null;
      if (this.again) {
        this.again = false;
        this.noteWrites();
      }
    });
    return this.running;
  }

  /** Stops scheduling; waits for a check that is running (the database closes next). */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.running?.catch(() => undefined);
  }

  private async run(): Promise<UpkeepOutcome> {
    try {
      const repo = new SearchRepository(await this.deps.knex());
      const { autovacuum, tables } = await repo.upkeepState(SEARCH_TABLES);
      const needs = tables.map((t) => ({ table: t.table, ...upkeepNeeds(t, autovacuum) }));
      const vacuumed = needs.filter((n) => n.vacuum).map((n) => n.table);
      const analyzed = needs.filter((n) => n.analyze).map((n) => n.table);
      const started = performance.now();
      await repo.refreshStatistics(vacuumed, { vacuum: true });
      await repo.refreshStatistics(analyzed.filter((t) => !vacuumed.includes(t)), { vacuum: false });
      const outcome = { analyzed, vacuumed, autovacuum };
      if (analyzed.length) this.deps.logger?.info({ ...outcome, ms: Math.round(performance.now() - started) }, 'search tables analyzed');
      this.emit('checked', outcome);
      return outcome;
    } catch (err) {
      this.deps.logger?.warn({ err }, 'search tables upkeep failed');
      this.emit('failed', err);
      throw err;
    }
  }
}
