import type { Knex } from 'knex';
import type { Database } from '../db/database.ts';
import type { TenantScope } from '../../ports/tenant-scope.ts';
import {
  assertCollectionName,
  type CollectionSpec,
  type VectorFilter,
  type VectorHit,
  type VectorPoint,
  type VectorStore,
} from '../../ports/vector-store.ts';

/**
 * Vectors in PostgreSQL through pgvector: PGlite ships the extension, so the embedded
 * profile needs no vector server; a real PostgreSQL with pgvector works the same.
 * A collection is a table `vec_<name>`; like Qdrant collections they come and go
 * with model versions, so they are made here rather than by a migration.
 * Search is an exact cosine scan within the tenant: always correct; an ANN index is
 * a later, measured choice.
 */
export class PgVectorStore implements VectorStore {
  readonly backend = 'pgvector' as const;
  private readonly knex: Knex;
  private ready: Promise<void> | null = null;

  constructor(db: Database) {
    this.knex = db.knex;
  }

  async ensureCollection(spec: CollectionSpec): Promise<void> {
    await this.init();
    const table = tableOf(spec.name);
    if (!Number.isInteger(spec.dimension) || spec.dimension < 1 || spec.dimension > 16_000) {
      throw new Error(`Invalid vector dimension ${spec.dimension}`);
    }
    const existing = await this.knex('vector_collections').where({ name: spec.name }).first();
    if (existing) {
      if (existing.dimension !== spec.dimension) {
        throw new Error(`Collection ${spec.name} has dimension ${existing.dimension}, not ${spec.dimension}`);
      }
      return;
    }
    await this.knex.transaction(async (trx) => {
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
          embedding vector(${spec.dimension}) not null
        )`, [table]);
      await trx.raw('create index if not exists ?? on ?? (tenant_id, document_id)', [`${table}_tenant_doc`, table]);
      await trx('vector_collections').insert({ name: spec.name, dimension: spec.dimension }).onConflict('name').ignore();
    });
  }

  async dropCollection(name: string): Promise<void> {
    await this.init();
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
      embedding: toVectorLiteral(p.vector),
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
    options: { limit: number; filter?: VectorFilter },
  ): Promise<VectorHit[]> {
    const literal = toVectorLiteral(vector);
    const query = this.knex(tableOf(collection))
      .select('*', this.knex.raw('1 - (embedding <=> ?::vector) as score', [literal]))
      .where('tenant_id', scope.tenantId)
      .orderByRaw('embedding <=> ?::vector', [literal])
      .limit(Math.max(1, Math.min(options.limit, 1000)));
    applyFilter(query, options.filter);
    const rows = await query;
    return rows.map((row: Record<string, unknown>) => ({
      id: row.id as string,
      score: Number(row.score),
      payload: {
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
      },
    }));
  }

  async deleteByDocument(scope: TenantScope, collection: string, documentIds: string[]): Promise<void> {
    if (documentIds.length === 0) return;
    await this.knex(tableOf(collection)).where('tenant_id', scope.tenantId).whereIn('document_id', documentIds).delete();
  }

  async count(scope: TenantScope, collection: string): Promise<number> {
    const [row] = await this.knex(tableOf(collection)).where('tenant_id', scope.tenantId).count({ n: '*' });
    return Number(row?.n ?? 0);
  }

  async ping(): Promise<void> {
    await this.knex.raw(`select '[1]'::vector`);
  }

  /** The database belongs to the Stores registry, which closes it. */
  async close(): Promise<void> {}

  private init(): Promise<void> {
    this.ready ??= (async () => {
      await this.knex.raw('create extension if not exists vector');
      await this.knex.raw(`create table if not exists vector_collections (
        name text primary key, dimension integer not null, created_at timestamptz not null default now())`);
    })().catch((err) => {
      this.ready = null;
      throw err;
    });
    return this.ready;
  }
}

function tableOf(collection: string): string {
  return `vec_${assertCollectionName(collection).replaceAll('-', '_')}`;
}

function toVectorLiteral(vector: Float32Array | number[]): string {
  const values = Array.from(vector);
  if (values.some((v) => !Number.isFinite(v))) throw new Error('vector has a non-finite component');
  return `[${values.join(',')}]`;
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
