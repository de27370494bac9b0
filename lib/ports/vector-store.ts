import type { TenantScope } from './tenant-scope.ts';

/** What every stored vector carries, so a hit can be cited and filtered without a join. */
export interface VectorPayload {
  source_id: string;
  document_id: string;
  chunk_id: string;
  page: number | null;
  lang: string;
  mime: string;
  version: number;
  updated_at: string;
  tags: string[];
  embed_model_alias: string;
  embed_model_version: string;
}

export interface VectorPoint {
  /** A UUID: Qdrant accepts only UUIDs or integers as point ids. */
  id: string;
  vector: Float32Array | number[];
  payload: VectorPayload;
}

export interface VectorFilter {
  documentIds?: string[];
  sourceIds?: string[];
  tags?: string[];
  langs?: string[];
  mimes?: string[];
}

export interface VectorHit {
  id: string;
  /** Cosine similarity, higher is closer. */
  score: number;
  payload: VectorPayload & { tenant_id: string };
}

/** Points of one document version, or of every version below one. */
export type VersionSelector = { only: number } | { below: number };

export interface CollectionSpec {
  /** One collection per embedding model version, e.g. `e5-small__v2`; two versions never share one. */
  name: string;
  dimension: number;
}

/**
 * Dense vectors. The tenant scope is an argument of every read and write: an adapter
 * stores it in the payload and filters on it itself, so no caller can forget it.
 */
export interface VectorStore {
  readonly backend: 'pgvector' | 'postgres' | 'qdrant';
  ensureCollection(spec: CollectionSpec): Promise<void>;
  dropCollection(name: string): Promise<void>;
  upsert(scope: TenantScope, collection: string, points: VectorPoint[]): Promise<void>;
  /**
   * The `limit` nearest points. `timeoutMs`: how long the caller will wait; an adapter
   * whose search runs elsewhere (a database) stops it there after that, so a search the
   * caller gave up on does not go on using the server's CPU.
   */
  search(
    scope: TenantScope,
    collection: string,
    vector: Float32Array | number[],
    options: { limit: number; filter?: VectorFilter; timeoutMs?: number },
  ): Promise<VectorHit[]>;
  /**
   * Deletes a document's points; `versions` narrows it to points of some document
   * versions (a new version replaces the old one's points once it is committed).
   */
  deleteByDocument(scope: TenantScope, collection: string, documentIds: string[], versions?: VersionSelector): Promise<void>;
  count(scope: TenantScope, collection: string): Promise<number>;
  /** Every document with at least one point in the collection: the orphan sweeper compares it with the documents table. */
  documentIds(scope: TenantScope, collection: string): Promise<string[]>;
  /**
   * Points the store-side name `alias` at `collection` in one atomic step (Qdrant's
   * collection aliases), so tools reading the store directly follow a switch. Stores
   * without aliases leave it out; search always names the version's own collection.
   */
  activate?(alias: string, collection: string): Promise<void>;
  ping(): Promise<void>;
  close(): Promise<void>;
}

const COLLECTION_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;

export function assertCollectionName(name: string): string {
  if (!COLLECTION_NAME.test(name)) {
    throw new Error(`Invalid vector collection name "${name}": use 1-63 of [a-z0-9_-], starting with a letter or digit`);
  }
  return name;
}

/**
 * The collection of one embedding model version. Ingest writes and search reads
 * through this one function, so vectors of two versions never meet in one index.
 */
export function collectionFor(alias: string, version: string): string {
  const part = (s: string) => s.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '');
  const name = `${part(alias)}__${part(version)}`.slice(0, 63);
  return assertCollectionName(name);
}
