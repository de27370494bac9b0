import type { Knex } from 'knex';
import type { Database } from '../db/database.ts';
import type { TenantScope } from '../../ports/tenant-scope.ts';
import {
  assertCollectionName,
  type CollectionSpec,
  type VectorFilter,
  type VectorHit,
  type VectorPayload,
  type VectorPoint,
  type VectorStore,
  type VersionSelector,
} from '../../ports/vector-store.ts';

/**
 * How vectors sit in a table: pgvector's `vector` type, or a plain `real[]` with the
 * cosine computed in SQL, for a PostgreSQL that has no pgvector (Debian 12 ships
 * none) — correct, exact and slow, for small deployments and mesh tests.
 */
const LAYOUTS = {
  pgvector: {
    column: (dimension: number) => `vector(${dimension})`,
    literal: '?::vector',
    distance: 'embedding <=> ?::vector',
    score: '1 - (embedding <=> ?::vector)',
    value: (values: number[]) => `[${values.join(',')}]`,
  },
  postgres: {
    column: () => 'real[]',
    literal: '?::real[]',
    // 1 - cosine similarity; norms are stored at write time, the query's is a bind value.
    distance: '1 - (select sum(a * b) from unnest(embedding, ?::real[]) as t(a, b)) / nullif(embedding_norm * ?, 0)',
    score: '(select sum(a * b) from unnest(embedding, ?::real[]) as t(a, b)) / nullif(embedding_norm * ?, 0)',
    value: (values: number[]) => values,
  },
} as const;

/**
 * Vectors in PostgreSQL: through pgvector (PGlite ships it, so the embedded profile
 * needs no vector server) or as plain arrays (layout `postgres`). A collection is a
 * table `vec_<name>`; like Qdrant collections they come and go with model versions,
 * so they are made here rather than by a migration. Search is an exact cosine scan
 * within the tenant: always correct; an ANN index is a later, measured choice.
 */
export class PgVectorStore implements VectorStore {
  readonly backend: 'pgvector' | 'postgres';
  private readonly knex: Knex;
  /** PGlite runs one statement at a time in this process: no server to stop a scan in. */
  private readonly serverSide: boolean;
  private ready: Promise<void> | null = null;
  /** Collections known to exist with their dimension: ensureCollection runs for every indexed document. */
  private readonly known = new Map<string, number>();

  constructor(db: Database, layout: 'pgvector' | 'postgres' = 'pgvector') {
    this.knex = db.knex;
    this.serverSide = db.backend === 'pg';
    this.backend = layout;
  }

  private get layout() {
    return LAYOUTS[this.backend];
  }

  async ensureCollection(spec: CollectionSpec): Promise<void> {
    await this.init();
    const table = tableOf(spec.name);
    if (!Number.isInteger(spec.dimension) || spec.dimension < 1 || spec.dimension > 16_000) {
      throw new Error(`Invalid vector dimension ${spec.dimension}`);
    }
    if (this.known.get(spec.name) === spec.dimension) return;
    const existing = await this.knex('vector_collections').where({ name: spec.name }).first();
    if (existing) {
      if (existing.dimension !== spec.dimension) {
        throw new Error(`Collection ${spec.name} has dimension ${existing.dimension}, not ${spec.dimension}`);
      }
      this.known.set(spec.name, spec.dimension);
      return;
    }
    await this.knex.transaction(async (trx) => {
      // Two first jobs of a new model version (in two processes) would race on
      // `create table if not exists` (a duplicate pg_type row): one waits for the other.
      await trx.raw('select pg_advisory_xact_lock(?)', [DDL_LOCK]);
      const created = await trx('vector_collections').where({ name: spec.name }).first();
      if (created) {
        if (created.dimension !== spec.dimension) throw new Error(`Collection ${spec.name} has dimension ${created.dimension}, not ${spec.dimension}`);
        return;
      }
      await trx.raw(`
        create table if not exists ?? (
          id uuid primary key,
          tenant_id text not null,
          document_id uuid not null,
          source_id text not null,
          chunk_id uuid not null,
          page integer,
          lang text not null,
          mime text not null,
          version integer not null,
          updated_at timestamptz not null,
          tags text[] not null default '{}',
          embed_model_alias text not null,
          embed_model_version text not null,
          embedding ${this.layout.column(spec.dimension)} not null,
          embedding_norm real not null
        )`, [table]);
      await trx.raw('create index if not exists ?? on ?? (tenant_id, document_id)', [`${table}_tenant_doc`, table]);
      await trx('vector_collections').insert({ name: spec.name, dimension: spec.dimension }).onConflict('name').ignore();
    });
    this.known.set(spec.name, spec.dimension);
  }

  async dropCollection(name: string): Promise<void> {
    await this.init();
    this.known.delete(name);
    await this.knex.schema.dropTableIfExists(tableOf(name));
    await this.knex('vector_collections').where({ name }).delete();
  }

  async upsert(scope: TenantScope, collection: string, points: VectorPoint[]): Promise<void> {
    if (points.length === 0) return;
    const rows = points.map((p) => ({
      id: p.id,
      tenant_id: scope.tenantId,
      document_id: p.payload.document_id,
      source_id: p.payload.source_id,
      chunk_id: p.payload.chunk_id,
      page: p.payload.page,
      lang: p.payload.lang,
      mime: p.payload.mime,
      version: p.payload.version,
      updated_at: p.payload.updated_at,
      tags: p.payload.tags,
      embed_model_alias: p.payload.embed_model_alias,
      embed_model_version: p.payload.embed_model_version,
      embedding: this.knex.raw(this.layout.literal, [this.layout.value(finite(p.vector))]),
      embedding_norm: norm(p.vector),
    }));
    // A point id already owned by another tenant is not overwritten: the update is
    // limited to rows of this tenant, so such a row is simply left alone.
    await this.knex(tableOf(collection))
      .insert(rows)
      .onConflict('id')
      .merge()
      .where(`${tableOf(collection)}.tenant_id`, scope.tenantId);
  }

  async search(
    scope: TenantScope,
    collection: string,
    vector: Float32Array | number[],
    options: { limit: number; filter?: VectorFilter; timeoutMs?: number },
  ): Promise<VectorHit[]> {
    const value = this.layout.value(finite(vector));
    const bindings = this.backend === 'pgvector' ? [value] : [value, norm(vector)];
    if (options.timeoutMs === undefined || !this.serverSide) return this.searchWith(this.knex, scope, collection, bindings, options);
    // The exact scan can take seconds on a large tenant (plain arrays: about 1.7 s for
    // 6,000 vectors of 1,024 dimensions on a busy 2-core machine). A caller that gave up
    // on it must not leave it running: under load such scans piled up in PostgreSQL and
    // starved the lexical leg too. The server stops it at the caller's deadline.
    const ms = Math.max(1, Math.ceil(options.timeoutMs));
    return this.knex.transaction(async (trx) => {
      await trx.raw(`set local statement_timeout = ${ms}`);
      return this.searchWith(trx, scope, collection, bindings, options);
    });
  }

  private async searchWith(
    knex: Knex,
    scope: TenantScope,
    collection: string,
    bindings: unknown[],
    options: { limit: number; filter?: VectorFilter },
  ): Promise<VectorHit[]> {
    const query = knex(tableOf(collection))
      // The hit's columns, not the vector: parsing 100 candidates' embeddings back from
      // text cost the api more CPU than anything else it did, and filled its heap with garbage.
      .select(...HIT_COLUMNS, knex.raw(`${this.layout.score} as score`, bindings as Knex.RawBinding[]))
      .where('tenant_id', scope.tenantId)
      .orderByRaw(this.layout.distance, bindings as Knex.RawBinding[])
      .limit(Math.max(1, Math.min(options.limit, 1000)));
    // The exact scan breaks ties by id, so equally distant points always come in one
    // order (a restored table must answer as the original did). pgvector's HNSW index
    // serves only a single ORDER BY distance, so there ties stay in index order.
    if (this.backend === 'postgres') query.orderBy('id');
    applyFilter(query, options.filter);
    const rows = await query;
    return rows.map((row: Record<string, unknown>) => ({ id: row.id as string, score: Number(row.score), payload: toPayload(row) }));
  }

  /** Every vector of a tenant in a collection, for an in-memory index built from this record. */
  async exportTenant(scope: TenantScope, collection: string): Promise<Array<{ id: string; vector: Float32Array; payload: VectorPayload & { tenant_id: string } }>> {
    const rows = await this.knex(tableOf(collection)).select('*', this.knex.raw('embedding::text as embedding_text')).where('tenant_id', scope.tenantId);
    return rows.map((row: Record<string, unknown>) => ({
      id: row.id as string,
      vector: Float32Array.from(String(row.embedding_text).replace(/^[[{]|[\]}]$/g, '').split(',').map(Number)),
      payload: toPayload(row),
    }));
  }

  async deleteByDocument(scope: TenantScope, collection: string, documentIds: string[], versions?: VersionSelector): Promise<void> {
    if (documentIds.length === 0) return;
    const query = this.knex(tableOf(collection)).where('tenant_id', scope.tenantId).whereIn('document_id', documentIds);
    if (versions && 'only' in versions) query.where('version', versions.only);
    if (versions && 'below' in versions) query.where('version', '<', versions.below);
    await query.delete();
  }

  async count(scope: TenantScope, collection: string): Promise<number> {
    const [row] = await this.knex(tableOf(collection)).where('tenant_id', scope.tenantId).count({ n: '*' });
    return Number(row?.n ?? 0);
  }

  async documentIds(scope: TenantScope, collection: string): Promise<string[]> {
    const rows = (await this.knex(tableOf(collection)).where('tenant_id', scope.tenantId).distinct('document_id')) as Array<{ document_id: string }>;
    return rows.map((r) => r.document_id).sort();
  }

  async ping(): Promise<void> {
    await this.init();
    await this.knex.raw('select 1 from vector_collections limit 1');
  }

  /** The database belongs to the Stores registry, which closes it. */
  async close(): Promise<void> {}

  private init(): Promise<void> {
    this.ready ??= this.knex.transaction(async (trx) => {
      await trx.raw('select pg_advisory_xact_lock(?)', [DDL_LOCK]);
      if (this.backend === 'pgvector') await trx.raw('create extension if not exists vector');
      await trx.raw(`create table if not exists vector_collections (
        name text primary key, dimension integer not null, created_at timestamptz not null default now())`);
    }).catch((err) => {
      this.ready = null;
      throw err;
    });
    return this.ready;
  }
}

/** Advisory lock key serialising this store's DDL across processes (any fixed 64-bit number). */
const DDL_LOCK = 0x7261676d_657368n.toString();

function tableOf(collection: string): string {
  return `vec_${assertCollectionName(collection).replaceAll('-', '_')}`;
}

/** What a search hit carries: its id and the payload (toPayload), never the embedding. */
const HIT_COLUMNS = ['id', 'tenant_id', 'document_id', 'source_id', 'chunk_id', 'page', 'lang', 'mime', 'version', 'updated_at', 'tags', 'embed_model_alias', 'embed_model_version'];

function toPayload(row: Record<string, unknown>): VectorPayload & { tenant_id: string } {
  return {
    tenant_id: row.tenant_id as string,
    document_id: row.document_id as string,
    source_id: row.source_id as string,
    chunk_id: row.chunk_id as string,
    page: row.page as number | null,
    lang: row.lang as string,
    mime: row.mime as string,
    version: row.version as number,
    updated_at: new Date(row.updated_at as string).toISOString(),
    tags: row.tags as string[],
    embed_model_alias: row.embed_model_alias as string,
    embed_model_version: row.embed_model_version as string,
  };
}

function finite(vector: Float32Array | number[]): number[] {
  const values = Array.from(vector);
  if (values.some((v) => !Number.isFinite(v))) throw new Error('vector has a non-finite component');
  return values;
}

function norm(vector: Float32Array | number[]): number {
  let sum = 0;
  for (const v of vector) sum += v * v;
  return Math.sqrt(sum);
}

function applyFilter(query: Knex.QueryBuilder, filter: VectorFilter | undefined): void {
  if (!filter) return;
  if (filter.documentIds?.length) query.whereIn('document_id', filter.documentIds);
  if (filter.sourceIds?.length) query.whereIn('source_id', filter.sourceIds);
  if (filter.langs?.length) query.whereIn('lang', filter.langs);
  if (filter.mimes?.length) query.whereIn('mime', filter.mimes);
  // Any of the given tags (&& is array overlap).
  if (filter.tags?.length) query.whereRaw('tags && ?::text[]', [filter.tags]);
}
