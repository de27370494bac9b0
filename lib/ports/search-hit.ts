/**
 * What a search hit is, as stored: shared by the repository that reads it
 * (lib/repositories/search.ts, `hits`) and the search that ranks it and answers
 * with it (lib/search/types.ts, `SearchHit`). Neither imports the other for it, so
 * the repositories stay below lib/search.
 */

/** The stored fields of a hit's chunk and its document. */
export interface StoredHit {
  chunkId: string;
  documentId: string;
  sourceId: string;
  title: string | null;
  page: number | null;
  heading: string | null;
  text: string;
  lang: string;
  mime: string;
  tags: string[];
}

/** Which chunks a search may return (every field optional; absent = no condition). */
export interface SearchFilters {
  tags?: string[];
  sourceIds?: string[];
  documentIds?: string[];
  langs?: string[];
  mimes?: string[];
}
