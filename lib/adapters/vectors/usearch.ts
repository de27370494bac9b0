import { Index, MetricKind, ScalarKind } from 'usearch';
import type { Database } from '../db/database.ts';
import type { TenantScope } from '../../ports/tenant-scope.ts';
import type { CollectionSpec, VectorFilter, VectorHit, VectorPayload, VectorPoint, VectorStore, VersionSelector } from '../../ports/vector-store.ts';
import { PgVectorStore } from './pgvector.ts';

interface Entry {
  key: bigint;
  payload: VectorPayload & { tenant_id: string };
}

/** One tenant's vectors of one collection: an HNSW graph, and the payloads beside it. */
interface TenantIndex {
  index: Index;
  byId: Map<string, Entry>;
  byKey: Map<bigint, string>;
  nextKey: bigint;
}

/**
 * The embedded profile's vector store: pgvector in PGlite stays the record (it survives
 * restarts), and each (collection, tenant) also lives in an in-memory HNSW index
 * (usearch), built from the record on first use and kept in step on every write. A
 * search then never waits for the database, which PGlite — one connection — would
 * make it queue behind the lexical leg. One process only: another process writing the
 * same database would not update this memory.
 */
export class UsearchVectorStore implements VectorStore {
  readonly backend = 'pgvector' as const;
  private readonly record: PgVectorStore;
  private readonly indexes = new Map<string, Promise<TenantIndex>>();
  private readonly dimensions = new Map<string, number>();

  constructor(private readonly db: Database) {
    this.record = new PgVectorStore(db, 'pgvector');
  }

  async ensureCollection(spec: CollectionSpec): Promise<void> {
    await this.record.ensureCollection(spec);
    this.dimensions.set(spec.name, spec.dimension);
  }

  async dropCollection(name: string): Promise<void> {
    await this.record.dropCollection(name);
    for (const key of [...this.indexes.keys()]) if (key.startsWith(`${name}\u0000`)) this.indexes.delete(key);
    this.dimensions.delete(name);
  }

  async upsert(scope: TenantScope, collection: string, points: VectorPoint[]): Promise<void> {
    await this.record.upsert(scope, collection, points);
    const cached = this.indexes.get(cacheKey(collection, scope));
    if (!cached) return; // built from the record when first searched
    const tenant = await cached;
    for (const point of points) {
      remove(tenant, point.id);
      add(tenant, point.id, Float32Array.from(point.vector), { ...point.payload, tenant_id: scope.tenantId });
    }
  }

  async search(scope: TenantScope, collection: string, vector: Float32Array | number[], options: { limit: number; filter?: VectorFilter }): Promise<VectorHit[]> {
    const tenant = await this.tenantIndex(scope, collection);
    const size = tenant.byId.size;
    if (size === 0) return [];
    const limit = Math.max(1, Math.min(options.limit, 1000));
    // usearch reads a typed array from its start: hand it its own copy, not a view.
    const query = Float32Array.from(vector);
    for (let k = Math.min(size, options.filter ? limit * 4 : limit); ; k = Math.min(size, k * 4)) {
      const found = tenant.index.search(query, k, 0);
      const hits: VectorHit[] = [];
      for (let i = 0; i < found.keys.length && hits.length < limit; i++) {
        const id = tenant.byKey.get(found.keys[i]!);
        const entry = id ? tenant.byId.get(id) : undefined;
        if (!entry || !matches(entry.payload, options.filter)) continue;
        hits.push({ id: id!, score: 1 - found.distances[i]!, payload: entry.payload });
      }
      if (hits.length >= limit || k >= size) return hits;
    }
  }

  async deleteByDocument(scope: TenantScope, collection: string, documentIds: string[], versions?: VersionSelector): Promise<void> {
    await this.record.deleteByDocument(scope, collection, documentIds, versions);
    const cached = this.indexes.get(cacheKey(collection, scope));
    if (!cached) return;
    const tenant = await cached;
    const docs = new Set(documentIds);
    for (const [id, entry] of [...tenant.byId]) {
      if (!docs.has(entry.payload.document_id)) continue;
      if (versions && 'only' in versions && entry.payload.version !== versions.only) continue;
      if (versions && 'below' in versions && entry.payload.version >= versions.below) continue;
      remove(tenant, id);
    }
  }

  async count(scope: TenantScope, collection: string): Promise<number> {
    return this.record.count(scope, collection);
  }

  documentIds(scope: TenantScope, collection: string): Promise<string[]> {
    return this.record.documentIds(scope, collection);
  }

  async ping(): Promise<void> {
    await this.record.ping();
  }

  async close(): Promise<void> {
    this.indexes.clear();
  }

  private tenantIndex(scope: TenantScope, collection: string): Promise<TenantIndex> {
    const key = cacheKey(collection, scope);
    let pending = this.indexes.get(key);
    if (!pending) {
      pending = this.build(scope, collection);
      this.indexes.set(key, pending);
      pending.catch(() => this.indexes.delete(key));
    }
    return pending;
  }

  /** Loads the tenant's vectors of the collection from the record into a new HNSW index. */
  private async build(scope: TenantScope, collection: string): Promise<TenantIndex> {
    const dimension = this.dimensions.get(collection) ?? (await this.db.knex('vector_collections').where({ name: collection }).first())?.dimension;
    if (!dimension) throw new Error(`No vector collection ${collection}`);
    this.dimensions.set(collection, dimension);
    const tenant: TenantIndex = { index: new Index({ metric: MetricKind.Cos, connectivity: 16, dimensions: dimension, quantization: ScalarKind.F32, expansion_add: 128, expansion_search: 64, multi: false }), byId: new Map(), byKey: new Map(), nextKey: 1n };
    const rows = await this.record.exportTenant(scope, collection);
    for (const row of rows) add(tenant, row.id, row.vector, row.payload);
    return tenant;
  }
}

const cacheKey = (collection: string, scope: TenantScope) => `${collection}\u0000${scope.tenantId}`;

function add(tenant: TenantIndex, id: string, vector: Float32Array, payload: VectorPayload & { tenant_id: string }): void {
  const key = tenant.nextKey++;
  tenant.index.add(key, vector);
  tenant.byId.set(id, { key, payload });
  tenant.byKey.set(key, id);
}

function remove(tenant: TenantIndex, id: string): void {
  const entry = tenant.byId.get(id);
  if (!entry) return;
  tenant.index.remove(entry.key);
  tenant.byId.delete(id);
  tenant.byKey.delete(entry.key);
}

function matches(payload: VectorPayload, filter: VectorFilter | undefined): boolean {
  if (!filter) return true;
  if (filter.documentIds?.length && !filter.documentIds.includes(payload.document_id)) return false;
  if (filter.sourceIds?.length && !filter.sourceIds.includes(payload.source_id)) return false;
  if (filter.langs?.length && !filter.langs.includes(payload.lang)) return false;
  if (filter.mimes?.length && !filter.mimes.includes(payload.mime)) return false;
  if (filter.tags?.length && !filter.tags.some((t) => payload.tags.includes(t))) return false;
  return true;
}
