/**
 * The contract of `api.search` (POST /api/v1/search), shared by the search
 * implementation, RAG chat and the OpenAI-compatible API.
 */
import type { SearchFilters, StoredHit } from '../ports/search-hit.ts';

export type { SearchFilters } from '../ports/search-hit.ts';

export interface SearchParams {
  query: string;
  /** Hits returned (default 10, at most 100). */
  limit?: number;
  filters?: SearchFilters;
  /** Which legs run (default hybrid). */
  mode?: 'hybrid' | 'lexical' | 'dense';
  /** Reciprocal Rank Fusion constant (default 60). */
  rrfK?: number;
  /** Per-leg RRF weights; defaults depend on what the dense model is (see lib/search). */
  weights?: { lexical?: number; dense?: number };
  /** Maximal Marginal Relevance re-ranking for diversity; lambda 1 = pure relevance. */
  mmr?: { lambda: number };
  /** Embedding alias of the dense leg (default: the first active embed alias). */
  alias?: string;
}

/** A hit as `api.search` answers it: the stored fields (lib/ports/search-hit.ts) with its snippet, score and ranks. */
export interface SearchHit extends StoredHit {
  /** A short excerpt with matched words wrapped in <mark>…</mark>; the rest is HTML-escaped. */
  snippet: string;
  /** Fused score (RRF, after MMR if asked). */
  score: number;
  /** 1-based rank in each leg, null when the leg did not return the chunk. */
  ranks: { lexical: number | null; dense: number | null };
}

export interface SearchResult {
  hits: SearchHit[];
  /** Set when a leg failed or timed out and the answer comes from the other alone. */
  degraded: { lexical?: string; dense?: string; mmr?: string } | null;
  /** Which model version served the dense leg, if it ran. */
  dense: { alias: string; version: string } | null;
  tookMs: number;
  /** The RRF weights and k that were applied (defaults resolved), so a caller can see why hits ranked so. */
  fusion?: { k: number; weights: { lexical: number; dense: number } };
}
