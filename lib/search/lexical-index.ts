import type { Knex } from 'knex';
import type { Logger } from 'pino';
import type { TenantScope } from '../ports/tenant-scope.ts';
import { FT_CONFIGS, SearchRepository, type FtConfig, type LexicalHit, type TenantSearchStats } from '../repositories/search.ts';

/**
 * A tenant's postings held in the api's memory for plain-word lexical searches.
 *
 * Why: in SQL every posting a query sums costs microseconds of executor work, and a
 * long question over 100k chunks sums hundreds of thousands of them (p95 0.4–0.9 s);
 * summed from typed arrays, the same top takes about 1 ms. The scores are
 * the same BM25 over the same N, average length and df, which the search still reads
 * from PostgreSQL in its first round trip, so the top is the same exact top.
 *
 * Fresh by construction: postings are built from the chunk rows and labelled with the
 * tenant's `search_stats.version`, which every write of the tenant's chunks changes in
 * its own transaction. A search uses them only when the version it read with the
 * statistics is theirs; otherwise it reads SQL, and the postings are rebuilt in the
 * background. A tenant larger than the memory budget is never held; the least
 * recently used tenants are dropped to make room.
 */

export interface LexicalIndexSettings {
  /** Memory for every tenant's postings together (estimated), in bytes. 0 = off. */
  budgetBytes: number;
  /** Chunks read per round trip while building (each round trip holds PGlite's one connection; default 500, ~100 ms there). */
  pageSize?: number;
}

/** One configuration's scored terms, as lib/search plans them (weight = qtf × idf). */
export interface IndexPlan {
  config: FtConfig;
  terms: Array<{ term: string; weight: number }>;
}

/** Estimated bytes per posting (chunk index + tf) and per chunk (id, length, dictionary share). */
const BYTES_PER_POSTING = 6;
/** A posting's precomputed tf part (a float64: the scores must equal the SQL's to the bit). */
const BYTES_PER_IMPACT = 8;
const BYTES_PER_CHUNK = 120;
const BYTES_PER_TERM = 80;
/**
 * A query sums densely (see TenantPostings.top) once its postings number at least
 * 1 / this of the tenant's chunks. Measured on CISI questions' terms at 100k chunks:
 * noting each chunk as it is first seen costs ~10 ns a posting, the dense sum ~1–2 ns
 * a posting plus ~3 ns a chunk to scan and clear every sum; they cross near half.
 */
const DENSE_WHEN_POSTINGS_PER_CHUNK = 2;

/** The postings of one tenant at one version, by configuration and term. */
export class TenantPostings {
  readonly bytes: number;
  /** Scores of the current query, by chunk index; zeroed again after each query. */
  private readonly scores: Float64Array;
  private readonly touched: Int32Array;
  /**
   * Each posting's BM25 tf part, `tf·(k1 + 1) / (tf + k1·(1 − b + b·len/avgdl))`, for the
   * k1, b and average length of `impactsOf` (one version has one average length, so it
   * is computed once, at the first search). Why: the sum is then one multiply-add per
   * posting instead of a division and a second random read (the chunk's length). The
   * same expression in the same order as the SQL's, so the scores stay equal to the
   * bit. It costs 8 bytes a posting.
   */
  private impacts: Float64Array | null = null;
  private impactsOf = { k1: NaN, b: NaN, avgdl: NaN };

  constructor(
    readonly version: number,
    private readonly chunkIds: string[],
    private readonly lens: Float64Array,
    /** Per configuration: term → [start, end) in docs/tfs. */
    private readonly lists: Record<FtConfig, Map<string, [number, number]>>,
    private readonly docs: Int32Array,
    private readonly tfs: Uint16Array,
    /** The tenant's statistics at `version`, when the builder read them (lib/search plans a query from them without asking the database). */
    readonly stats: TenantSearchStats | null = null,
  ) {
    const terms = FT_CONFIGS.reduce((n, c) => n + lists[c].size, 0);
    this.bytes = docs.length * (BYTES_PER_POSTING + BYTES_PER_IMPACT) + chunkIds.length * BYTES_PER_CHUNK + terms * BYTES_PER_TERM;
    this.scores = new Float64Array(chunkIds.length);
    this.touched = new Int32Array(chunkIds.length);
  }

  get chunkCount(): number {
    return this.chunkIds.length;
  }

  /** The term's document frequency at this version: the length of its list (0 when absent). */
  df(config: FtConfig, term: string): number {
    const range = this.lists[config].get(term);
    return range ? range[1] - range[0] : 0;
  }

  /**
   * The top `limit` chunks by BM25, best first (ties by chunk id, as the SQL orders
   * them), exact. Every posting of the query's lists is summed, the lists rarest first
   * (by weight: the order the sums were always added in, so scores stay equal to the
   * bit), then the `limit`-th score is found and only the chunks at or above it sorted.
   *
   * Two ways to sum, chosen by which costs less for this query:
   * - dense: straight into the per-chunk sums, then one pass over all of them for the
   *   top. Why: a long question touches most of a tenant (CISI at 100k chunks: 190k
   *   postings over 26 lists touch 66k chunks), and the loop without a "first time this
   *   chunk is seen?" branch — mispredicted at random for every new chunk — ran 3× faster.
   * - sparse: noting each chunk the first time it is seen, so that a query of few
   *   postings in a large tenant neither clears nor scans every chunk's sum.
   *
   * Pruning (MaxScore with θ from the best partial sums) was dropped with the dense
   * sum: on CISI questions at 100k chunks it left 172k of 190k postings to sum, and even
   * a perfect θ leaves 65k to sum and 34k candidates to probe in the rest, as much work
   * as summing everything densely.
   *
   * `dense` forces one way (tests hold the two equal); by default it is chosen by cost.
   */
  top(plans: IndexPlan[], options: { k1: number; b: number; avgLength: number; limit: number; dense?: boolean }): LexicalHit[] {
    const { k1, b, limit } = options;
    if (limit <= 0) return [];
    const avgdl = Math.max(options.avgLength, 1);
    const impacts = this.impactsFor(k1, b, avgdl);
    const query: Array<{ start: number; end: number; weight: number }> = [];
    let postings = 0;
    for (const plan of plans) {
      const lists = this.lists[plan.config];
      for (const { term, weight } of plan.terms) {
        const range = lists.get(term);
        if (range) {
          query.push({ start: range[0], end: range[1], weight });
          postings += range[1] - range[0];
        }
      }
    }
    query.sort((x, y) => y.weight - x.weight || x.end - x.start - (y.end - y.start));
    const { scores, docs } = this;
    if (options.dense ?? postings * DENSE_WHEN_POSTINGS_PER_CHUNK >= scores.length) {
      for (const list of query) {
        const { weight, end } = list;
        for (let p = list.start; p < end; p++) scores[docs[p]!]! += weight * impacts[p]!;
      }
      const hits = this.best(null, limit);
      scores.fill(0);
      return hits;
    }
    const touched = this.touched;
    let count = 0;
    for (const list of query) {
      const { weight, end } = list;
      for (let p = list.start; p < end; p++) {
        const d = docs[p]!;
        if (scores[d] === 0) touched[count++] = d;
        scores[d]! += weight * impacts[p]!;
      }
    }
    const hits = this.best(touched.subarray(0, count), limit);
    for (let t = 0; t < count; t++) scores[touched[t]!] = 0;
    return hits;
  }

  /** Every posting's tf part for these k1, b and average length (see `impacts`). */
  private impactsFor(k1: number, b: number, avgdl: number): Float64Array {
    const at = this.impactsOf;
    if (this.impacts && at.k1 === k1 && at.b === b && at.avgdl === avgdl) return this.impacts;
    const { docs, tfs, lens } = this;
    const impacts = this.impacts ?? new Float64Array(docs.length);
    // Written as SearchRepository's SQL writes it (weight × this), so equal chunks tie exactly alike.
    for (let p = 0; p < docs.length; p++) {
      const tf = tfs[p]!;
      impacts[p] = (tf * (k1 + 1)) / (tf + k1 * (1 - b + (b * lens[docs[p]!]!) / avgdl));
    }
    this.impacts = impacts;
    this.impactsOf = { k1, b, avgdl };
    return impacts;
  }

  /**
   * The best `limit` of `candidates` (every chunk when null) by score, then chunk id,
   * in one pass: a heap of the `limit` best plain values so far, and every chunk at or
   * above its least noted on the way (~limit × ln(candidates / limit) of them on random
   * order; a chunk of the final top is always at or above the heap's least when it is
   * passed, since that only rises). Then only those are sorted with the tie-break — a
   * heap of chunks compared through their ids cost as much as the summing.
   */
  private best(candidates: Int32Array | null, limit: number): LexicalHit[] {
    const { scores, chunkIds } = this;
    const heap = new Float64Array(limit);
    const noted: number[] = [];
    // The heap's least, kept in a local: most chunks are below it, and their test is then
    // one load and one compare (in the dense case, a pass over every chunk of the tenant).
    let least = 0;
    if (candidates) {
      for (let t = 0; t < candidates.length; t++) {
        const d = candidates[t]!;
        const v = scores[d]!;
        if (v < least || v === 0) continue;
        noted.push(d);
        if (v !== least) least = replaceLeast(heap, v);
      }
    } else {
      for (let d = 0; d < scores.length; d++) {
        const v = scores[d]!;
        if (v < least || v === 0) continue;
        noted.push(d);
        if (v !== least) least = replaceLeast(heap, v);
      }
    }
    const theta = heap[0]!;
    const top: LexicalHit[] = [];
    for (const d of noted) if (scores[d]! >= theta) top.push({ chunkId: chunkIds[d]!, score: scores[d]! });
    return top.sort((x, y) => y.score - x.score || (x.chunkId < y.chunkId ? -1 : 1)).slice(0, limit);
  }
}

/** Puts `v` in place of a min-heap's least (heap[0]) and sifts it down; the new least. */
function replaceLeast(heap: Float64Array, v: number): number {
  const size = heap.length;
  let i = 0;
  for (;;) {
    const l = 2 * i + 1;
    const r = l + 1;
    let m = -1;
    let mv = v;
    if (l < size && heap[l]! < mv) {
      m = l;
      mv = heap[l]!;
    }
    if (r < size && heap[r]! < mv) {
      m = r;
      mv = heap[r]!;
    }
    if (m < 0) break;
    heap[i] = mv;
    i = m;
  }
  heap[i] = v;
  return heap[0]!;
}

/** The chunk rows and the term statistics disagreed: they were read at different versions. */
export class PostingsChangedError extends Error {
  constructor(detail: string) {
    super(`the tenant's chunks changed while their postings were built (${detail})`);
    this.name = 'PostingsChangedError';
  }
}

/**
 * Builds a tenant's postings: the terms with their df first, which size every list
 * exactly (6 bytes a posting, nothing larger held meanwhile), then the chunks' lexemes
 * page by page, each chunk's tf written into its terms' lists. Exported for
 * bench:search, which feeds it a tenant of its own to measure a larger one.
 */
export async function buildPostings(
  repo: Pick<SearchRepository, 'chunkLexemes' | 'tenantTerms'>,
  scope: TenantScope,
  version: number,
  pageSize: number,
  stats: TenantSearchStats | null = null,
): Promise<TenantPostings> {
  // Per configuration and term: its range in docs/tfs, and where its next posting goes.
  const slots: Record<FtConfig, Map<string, { start: number; end: number; at: number }>> = { russian: new Map(), english: new Map(), simple: new Map() };
  let total = 0;
  for (const { config, term, df } of await repo.tenantTerms(scope)) {
    slots[config].set(term, { start: total, end: total + df, at: total });
    total += df;
  }
  const docs = new Int32Array(total);
  const tfs = new Uint16Array(total);
  const chunkIds: string[] = [];
  const lens: number[] = [];
  let after: { documentId: string; ord: number } | null = null;
  for (;;) {
    const page = await repo.chunkLexemes(scope, after, pageSize);
    for (const chunk of page) {
      const d = chunkIds.length;
      chunkIds.push(chunk.chunkId);
      lens.push(chunk.len);
      const byTerm = slots[chunk.config];
      for (let i = 0; i < chunk.terms.length; i++) {
        const slot = byTerm.get(chunk.terms[i]!);
        if (!slot) throw new PostingsChangedError(`a term with no df: ${chunk.terms[i]}`);
        if (slot.at >= slot.end) throw new PostingsChangedError(`more postings than df: ${chunk.terms[i]}`);
        docs[slot.at] = d;
        tfs[slot.at] = Math.min(chunk.tfs[i]!, 65_535);
        slot.at++;
      }
    }
    if (page.length < pageSize) break;
    const last = page[page.length - 1]!;
    after = { documentId: last.documentId, ord: last.ord };
  }
  const lists = { russian: new Map(), english: new Map(), simple: new Map() } as Record<FtConfig, Map<string, [number, number]>>;
  for (const config of FT_CONFIGS) {
    for (const [term, slot] of slots[config]) {
      if (slot.at !== slot.end) throw new PostingsChangedError(`fewer postings than df: ${term}`);
      lists[config].set(term, [slot.start, slot.end]);
    }
    slots[config].clear();
  }
  return new TenantPostings(version, chunkIds, Float64Array.from(lens), lists, docs, tfs, stats);
}

interface Entry {
  postings: TenantPostings | null;
  loading: Promise<void> | null;
  lastUsed: number;
  /** A version not to build at: too large for the budget, or changed while building (then only after `retryAt`). */
  skipVersion: number | null;
  retryAt: number;
}

/** Every tenant's postings this process holds, within a memory budget. */
export class LexicalIndexCache {
  private readonly entries = new Map<string, Entry>();
  private closed = false;
  /** Plain-word lookups answered from memory, and those left to SQL (for metrics). */
  readonly lookups = { memory: 0, sql: 0 };

  constructor(private readonly deps: { knex: () => Promise<Knex>; settings: LexicalIndexSettings; logger?: Logger }) {}

  /** Tenants whose postings are held now. */
  get tenants(): number {
    let n = 0;
    for (const e of this.entries.values()) if (e.postings) n++;
    return n;
  }

  /** Estimated bytes held now. */
  get bytes(): number {
    let total = 0;
    for (const e of this.entries.values()) total += e.postings?.bytes ?? 0;
    return total;
  }

  /**
   * The tenant's postings if they are at `stats.version`, else null — and then they are
   * (re)built in the background, unless the tenant is too large for the budget.
   */
  lookup(scope: TenantScope, stats: TenantSearchStats): TenantPostings | null {
    if (this.deps.settings.budgetBytes <= 0 || this.closed) return null;
    const entry = this.entryOf(scope.tenantId);
    entry.lastUsed = performance.now();
    if (entry.postings?.version === stats.version) {
      this.lookups.memory++;
      return entry.postings;
    }
    this.lookups.sql++;
    // Out of date: useless now, and its memory is better spent on the rebuild.
    entry.postings = null;
    if (!entry.loading && !(entry.skipVersion === stats.version && performance.now() < entry.retryAt)) {
      void this.load(scope).catch(() => undefined);
    }
    return null;
  }

  /**
   * The tenant's postings held now, whatever their version (the caller checks it against
   * the database's), or null. Nothing is built from here: `lookup` does that.
   */
  held(scope: TenantScope): TenantPostings | null {
    if (this.deps.settings.budgetBytes <= 0 || this.closed) return null;
    return this.entries.get(scope.tenantId)?.postings ?? null;
  }

  /** Builds the tenant's postings now (or waits for the build running); null when they were not kept. */
  async load(scope: TenantScope): Promise<TenantPostings | null> {
    const entry = this.entryOf(scope.tenantId);
    if (!entry.loading) {
      entry.loading = this.build(scope, entry).finally(() => {
        entry.loading = null;
      });
    }
    await entry.loading;
    return entry.postings;
  }

  private async build(scope: TenantScope, entry: Entry): Promise<void> {
    const started = performance.now();
    try {
      const repo = new SearchRepository(await this.deps.knex());
      const before = await repo.stats(scope);
      const estimate = before.totalLength * BYTES_PER_POSTING + before.chunkCount * (BYTES_PER_CHUNK + BYTES_PER_TERM);
      if (estimate > this.deps.settings.budgetBytes) {
        entry.skipVersion = before.version;
        entry.retryAt = Number.POSITIVE_INFINITY;
        this.deps.logger?.info({ tenant: scope.tenantId, chunks: before.chunkCount, estimateBytes: estimate }, 'lexical postings over the memory budget: searches read SQL');
        return;
      }
      const postings = await buildPostings(repo, scope, before.version, this.deps.settings.pageSize ?? 500, before).catch((err: unknown) => {
        if (err instanceof PostingsChangedError) return null;
        throw err;
      });
      const after = await repo.stats(scope);
      const ms = performance.now() - started;
      if (!postings || after.version !== before.version) {
        // Written to meanwhile: what was read may mix versions. Another try once as much
        // time has passed as this one took, so a tenant under constant ingest costs at
        // most half the time in rebuilds.
        entry.skipVersion = after.version;
        entry.retryAt = performance.now() + ms;
        return;
      }
      if (postings.bytes > this.deps.settings.budgetBytes) {
        entry.skipVersion = before.version;
        entry.retryAt = Number.POSITIVE_INFINITY;
        return;
      }
      this.makeRoom(postings.bytes, scope.tenantId);
      entry.postings = postings;
      this.deps.logger?.info({ tenant: scope.tenantId, chunks: postings.chunkCount, bytes: postings.bytes, ms: Math.round(ms), version: postings.version }, 'lexical postings held in memory');
    } catch (err) {
      this.deps.logger?.warn({ err, tenant: scope.tenantId }, 'lexical postings not built: searches read SQL');
      throw err;
    }
  }

  private entryOf(tenantId: string): Entry {
    let entry = this.entries.get(tenantId);
    if (!entry) this.entries.set(tenantId, (entry = { postings: null, loading: null, lastUsed: performance.now(), skipVersion: null, retryAt: 0 }));
    return entry;
  }

  /** Starts no more builds and waits for those running (the database closes next). */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.allSettled([...this.entries.values()].map((e) => e.loading));
    this.entries.clear();
  }

  /** Drops the least recently used tenants' postings until `bytes` more fit. */
  private makeRoom(bytes: number, keep: string): void {
    const held = [...this.entries.entries()].filter(([id, e]) => e.postings && id !== keep).sort((a, b) => a[1].lastUsed - b[1].lastUsed);
    let total = this.bytes;
    for (const [, e] of held) {
      if (total + bytes <= this.deps.settings.budgetBytes) break;
      total -= e.postings!.bytes;
      e.postings = null;
    }
  }
}
