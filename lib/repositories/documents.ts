import type { Knex } from 'knex';
import type { TenantScope } from '../ports/tenant-scope.ts';

export type DocumentStatus = 'queued' | 'running' | 'ready' | 'failed' | 'canceled';

export interface DocumentRow {
  id: string;
  tenantId: string;
  sourceId: string;
  title: string | null;
  filename: string | null;
  mime: string;
  sizeBytes: number;
  contentHash: string;
  objectKey: string | null;
  tags: string[];
  status: DocumentStatus;
  version: number;
  /** Pages of the current version without a text layer that OCR did not read (OCR_ENABLED=false). */
  pagesWithoutText: number[];
  createdBy: string | null;
  createdAt: Date;
  updatedAt: Date;
}

export interface NewDocument {
  sourceId: string;
  title?: string | null;
  filename?: string | null;
  mime: string;
  sizeBytes: number;
  contentHash: string;
  objectKey?: string | null;
  tags?: string[];
  createdBy?: string | null;
}

export class DocumentsRepository {
  constructor(private readonly knex: Knex) {}

  /**
   * Inserts, or returns the tenant's existing document with the same content:
   * `created` says which, so an upload can answer "already exists" without a race.
   */
  async create(scope: TenantScope, input: NewDocument): Promise<{ document: DocumentRow; created: boolean }> {
    const inserted = await this.insertIfNewContent(scope, input, this.knex);
    if (inserted) return { document: inserted, created: true };
    const existing = await this.findByContentHash(scope, input.contentHash);
    if (!existing) throw new Error('document insert conflicted on another key (source_id)');
    return { document: existing, created: false };
  }

  async get(scope: TenantScope, id: string, trx: Knex = this.knex): Promise<DocumentRow | null> {
    const row = await trx('documents').where({ tenant_id: scope.tenantId, id }).first();
    return row ? toDocument(row) : null;
  }

  async findByContentHash(scope: TenantScope, contentHash: string, trx: Knex = this.knex): Promise<DocumentRow | null> {
    const row = await trx('documents').where({ tenant_id: scope.tenantId, content_hash: contentHash }).first();
    return row ? toDocument(row) : null;
  }

  async findBySource(scope: TenantScope, sourceId: string): Promise<DocumentRow | null> {
    const row = await this.knex('documents').where({ tenant_id: scope.tenantId, source_id: sourceId }).first();
    return row ? toDocument(row) : null;
  }

  /** The document of a source, locked until the transaction ends: a new version of it is being registered. */
  async lockBySource(scope: TenantScope, sourceId: string, trx: Knex): Promise<DocumentRow | null> {
    const row = await trx('documents').where({ tenant_id: scope.tenantId, source_id: sourceId }).forUpdate().first();
    return row ? toDocument(row) : null;
  }

  /** Inserts inside the caller's transaction; null when the tenant already has this content (a racing identical upload won). */
  async insertIfNewContent(scope: TenantScope, input: NewDocument, trx: Knex): Promise<DocumentRow | null> {
    const [row] = await trx('documents')
      .insert({
        tenant_id: scope.tenantId,
        source_id: input.sourceId,
        title: input.title ?? null,
        filename: input.filename ?? null,
        mime: input.mime,
        size_bytes: input.sizeBytes,
        content_hash: input.contentHash,
        object_key: input.objectKey ?? null,
        tags: input.tags ?? [],
        created_by: input.createdBy ?? null,
      })
      .onConflict(['tenant_id', 'content_hash'])
      .ignore()
      .returning('*');
    return row ? toDocument(row) : null;
  }

  /** Newest first; `before` is the createdAt of the last row of the previous page. */
  async list(scope: TenantScope, options: { limit: number; before?: Date }): Promise<DocumentRow[]> {
    const query = this.knex('documents')
      .where({ tenant_id: scope.tenantId })
      .orderBy([{ column: 'created_at', order: 'desc' }, { column: 'id', order: 'desc' }])
      .limit(Math.min(Math.max(options.limit, 1), 500));
    if (options.before) query.where('created_at', '<', options.before);
    return (await query).map(toDocument);
  }

  async setStatus(scope: TenantScope, id: string, status: DocumentStatus, trx: Knex = this.knex): Promise<boolean> {
    const updated = await trx('documents')
      .where({ tenant_id: scope.tenantId, id })
      .update({ status, updated_at: this.knex.fn.now() });
    return updated === 1;
  }

  /**
   * Makes `version` the document's current content (its chunks are swapped in the
   * same transaction by the caller) and marks it ready. Returns the row as it was
   * before, so the caller can clean up the previous version's file.
   */
  async commitVersion(
    scope: TenantScope,
    id: string,
    version: { version: number; contentHash: string; objectKey: string; sizeBytes: number; mime: string; filename: string | null; tags: string[]; pagesWithoutText?: number[] },
    trx: Knex,
  ): Promise<DocumentRow | null> {
    const before = await trx('documents').where({ tenant_id: scope.tenantId, id }).forUpdate().first();
    if (!before) return null;
    await trx('documents').where({ tenant_id: scope.tenantId, id }).update({
      version: version.version,
      content_hash: version.contentHash,
      object_key: version.objectKey,
      size_bytes: version.sizeBytes,
      mime: version.mime,
      filename: version.filename,
      tags: version.tags,
      pages_without_text: version.pagesWithoutText ?? [],
      status: 'ready',
      updated_at: trx.fn.now(),
    });
    return toDocument(before);
  }

  /** Chunks go with it (foreign key cascade). */
  async delete(scope: TenantScope, id: string, trx: Knex = this.knex): Promise<DocumentRow | null> {
    const [row] = await trx('documents').where({ tenant_id: scope.tenantId, id }).delete().returning('*');
    return row ? toDocument(row) : null;
  }
}

function toDocument(row: Record<string, unknown>): DocumentRow {
  return {
    id: row.id as string,
    tenantId: row.tenant_id as string,
    sourceId: row.source_id as string,
    title: row.title as string | null,
    filename: row.filename as string | null,
    mime: row.mime as string,
    sizeBytes: Number(row.size_bytes),
    contentHash: row.content_hash as string,
    objectKey: row.object_key as string | null,
    tags: row.tags as string[],
    status: row.status as DocumentStatus,
    version: row.version as number,
    pagesWithoutText: ((row.pages_without_text as number[] | null) ?? []).map(Number),
    createdBy: row.created_by as string | null,
    createdAt: new Date(row.created_at as string),
    updatedAt: new Date(row.updated_at as string),
  };
}
