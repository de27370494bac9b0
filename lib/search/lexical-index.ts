import type { Knex } from 'knex';
import type { Logger } from 'pino';
import type { TenantScope } from '../ports/tenant-scope.ts';
import { FT_CONFIGS, SearchRepository, type FtConfig, type LexicalHit, type TenantSearchStats } from '../repositories/search.ts';

/**
 * A tenant's postings held in the api's memory for plain-word lexical searches.
 *
 * Why: in SQL every posting a query sums costs microseconds of executor work, and a
 * long question over 100k chunks sums hundreds of thousands of them (p95 0.4–0.9 s);
 * from typed arrays, with MaxScore pruning, the same top takes 2–5 ms. The scores are
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
const BYTES_PER_CHUNK = 120;
const BYTES_PER_TERM = 80;

/** The postings of one tenant at one version, by configuration and term. */
export class TenantPostings {
  readonly bytes: number;
  /** Scores of the current query, by chunk index; zeroed again after each query. */
  private readonly scores: Float64Array;
  private readonly touched: Int32Array;

  constructor(
    readonly version: number,
    private readonly chunkIds: string[],
    private readonly lens: Float64Array,
    /** Per configuration: term → [start, end) in docs/tfs. */
    private readonly lists: Record<FtConfig, Map<string, [number, number]>>,
    private readonly docs: Int32Array,
    private readonly tfs: Uint16Array,
  ) {
    const terms = FT_CONFIGS.reduce((n, c) => n + lists[c].size, 0);
    this.bytes = docs.length * BYTES_PER_POSTING + chunkIds.length * BYTES_PER_CHUNK + terms * BYTES_PER_TERM;
    this.scores = new Float64Array(chunkIds.length);
    this.touched = new Int32Array(chunkIds.length);
  }

  get chunkCount(): number {
    return this.chunkIds.length;
  }

  /**
   * The top `limit` chunks by BM25, best first (ties by chunk id, as the SQL orders
   * them), exact, with MaxScore pruning (Turtle & Flood) in memory: the query's lists
   * are summed rarest first (highest bound w·(k1 + 1) first); once the bounds of the
   * lists left add up to less than θ, the `limit`-th best sum so far (a lower bound of
   * the final `limit`-th score, since sums only grow), no chunk untouched so far can
   * reach the top, nor can a touched one whose sum plus those bounds stays under θ. The
   * lists left are then only probed for the remaining candidates (each list is in chunk
   * order: a binary search per candidate) instead of read whole — the long lists of
   * common words, which are most of the postings of a long question.
   */
  top(plans: IndexPlan[], options: { k1: number; b: number; avgLength: number; limit: number }): LexicalHit[] {
    const { k1, b, limit } = options;
    if (limit <= 0) return [];
    const avgdl = Math.max(options.avgLength, 1);
    const { scores, touched, docs, tfs, lens } = this;
    const query: Array<{ start: number; end: number; weight: number; bound: number }> = [];
    for (const plan of plans) {
      const lists = this.lists[plan.config];
      for (const { term, weight } of plan.terms) {
        const range = lists.get(term);
        if (range) query.push({ start: range[0], end: range[1], weight, bound: weight * (k1 + 1) });
      }
    }
    query.sort((x, y) => y.bound - x.bound || x.end - x.start - (y.end - y.start));
    // rest[i]: the most the lists from i on can add to one chunk.
    const rest = new Float64Array(query.length + 1);
    for (let i = query.length - 1; i >= 0; i--) rest[i] = rest[i + 1]! + query[i]!.bound;
    // Written as SearchRepository's SQL writes it, so equal chunks tie exactly alike.
    const contribution = (d: number, tf: number, weight: number) => weight * ((tf * (k1 + 1)) / (tf + k1 * (1 - b + (b * lens[d]!) / avgdl)));

    let count = 0;
    let i = 0;
    let attempts = 0;
    let candidates: Int32Array | null = null;
    for (; i < query.length; i++) {
      const list = query[i]!;
      // θ costs a pass over the touched chunks: tried at most twice, before a list long
      // next to them (the common words come last).
      if (candidates === null && attempts < 2 && count >= limit && (list.end - list.start) * 2 > count) {
        attempts++;
        const theta = this.kthScore(touched.subarray(0, count), limit);
        if (rest[i]! < theta) {
          const kept: number[] = [];
          for (let t = 0; t < count; t++) if (scores[touched[t]!]! + rest[i]! >= theta) kept.push(touched[t]!);
          let left = 0;
          for (let j = i; j < query.length; j++) left += query[j]!.end - query[j]!.start;
          // Probing pays when the candidates' binary searches cost less than reading the lists.
          if (kept.length * Math.log2(left + 2) * 2 < left) candidates = Int32Array.from(kept).sort();
        }
        if (candidates) break;
      }
      const weight = list.weight;
      // `contribution` written out: as a call in this loop the whole search took twice as long.
      for (let p = list.start; p < list.end; p++) {
        const d = docs[p]!;
        const tf = tfs[p]!;
        if (scores[d] === 0) touched[count++] = d;
        scores[d]! += weight * ((tf * (k1 + 1)) / (tf + k1 * (1 - b + (b * lens[d]!) / avgdl)));
      }
    }

    if (candidates) {
      for (let j = i; j < query.length; j++) {
        const list = query[j]!;
        let lo = list.start;
        for (let c = 0; c < candidates.length && lo < list.end; c++) {
          const d = candidates[c]!;
          // First posting at or after d in [lo, end): the candidates ascend, so lo only moves on.
          let hi = list.end;
          while (lo < hi) {
            const mid = (lo + hi) >>> 1;
            if (docs[mid]! < d) lo = mid + 1;
            else hi = mid;
          }
          if (lo < list.end && docs[lo] === d) scores[d]! += contribution(d, tfs[lo]!, list.weight);
        }
      }
    }

    const hits = this.best(candidates ?? touched.subarray(0, count), limit);
    for (let t = 0; t < count; t++) scores[touched[t]!] = 0;
    return hits;
  }

  /**
   * The `limit`-th best score of `chunks` (0 when there are fewer). A heap of plain
   * values: it runs over every touched chunk, and through a comparator of chunks with
   * their tie-break the 1M-chunk top took 30 % longer.
   */
  private kthScore(chunks: Int32Array, limit: number): number {
    const heap = new Float64Array(limit);
    let size = 0;
    for (let t = 0; t < chunks.length; t++) {
      const v = this.scores[chunks[t]!]!;
      if (size < limit) {
        let i = size++;
        heap[i] = v;
        while (i > 0 && heap[(i - 1) >> 1]! > heap[i]!) {
          const parent = (i - 1) >> 1;
          [heap[i], heap[parent]] = [heap[parent]!, heap[i]!];
          i = parent;
        }
      } else if (v > heap[0]!) {
        heap[0] = v;
        for (let i = 0; ; ) {
          const l = 2 * i + 1;
          const r = l + 1;
          let m = i;
          if (l < size && heap[l]! < heap[m]!) m = l;
          if (r < size && heap[r]! < heap[m]!) m = r;
          if (m === i) break;
          [heap[i], heap[m]] = [heap[m]!, heap[i]!];
          i = m;
        }
      }
    }
    return size < limit ? 0 : heap[0]!;
  }

  /**
   * The best `limit` of `candidates` by score, then chunk id: the `limit`-th score first
   * (a heap of plain values), then only the chunks at or above it sorted with the
   * tie-break — a heap of chunks compared through their ids cost as much as the summing.
   */
  private best(candidates: Int32Array, limit: number): LexicalHit[] {
    const { scores, chunkIds } = this;
    const theta = this.kthScore(candidates, limit);
    const top: LexicalHit[] = [];
    for (let t = 0; t < candidates.length; t++) {
      const d = candidates[t]!;
      if (scores[d]! >= theta) top.push({ chunkId: chunkIds[d]!, score: scores[d]! });
    }
    return top.sort((x, y) => y.score - x.score || (x.chunkId < y.chunkId ? -1 : 1)).slice(0, limit);
  }
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
  return new TenantPostings(version, chunkIds, Float64Array.from(lens), lists, docs, tfs);
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
      const postings = await buildPostings(repo, scope, before.version, this.deps.settings.pageSize ?? 500).catch((err: unknown) => {
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
