import type { Knex } from 'knex';
import type { TenantScope } from '../ports/tenant-scope.ts';
import type { TextLanguage } from '../extract/language.ts';

/** Languages with their own full-text configuration; anything else is indexed with 'simple'. */
/** A chunk's full-text configuration: the language lib/extract detected for it. */
export type ChunkLang = TextLanguage;

export interface NewChunk {
  /** Set by the ingest pipeline so vectors can be written under the chunk's id before the row exists. */
  id?: string;
  ord: number;
  text: string;
  page?: number | null;
  heading?: string | null;
  lang: ChunkLang;
  contentHash: string;
  tokenCount: number;
}

export interface ChunkRow extends Required<Omit<NewChunk, 'id'>> {
  id: string;
  tenantId: string;
  documentId: string;
}

/**
 * Chunk rows. The BM25 statistics of search (search_stats, search_terms) follow every
 * insert and delete through triggers (migration 2026112420_search), inside the same
 * transaction: pass `trx` to make a write part of a larger transaction (ingest
 * replaces a document's chunks atomically), or leave it out for a single statement.
 */
export class ChunksRepository {
  constructor(private readonly knex: Knex) {}

  /**
   * The composite foreign key (tenant_id, document_id) makes the database refuse
   * chunks for a document of another tenant, whatever the caller passes.
   */
  async insertMany(scope: TenantScope, documentId: string, chunks: NewChunk[], trx: Knex = this.knex): Promise<ChunkRow[]> {
    if (chunks.length === 0) return [];
    const rows = await trx('chunks')
      .insert(
        chunks.map((c) => ({
          ...(c.id && { id: c.id }),
          tenant_id: scope.tenantId,
          document_id: documentId,
          ord: c.ord,
          text: c.text,
          page: c.page ?? null,
          heading: c.heading ?? null,
          lang: c.lang,
          content_hash: c.contentHash,
          token_count: c.tokenCount,
        })),
      )
      .returning(COLUMNS);
    return rows.map(toChunk);
  }

  async listByDocument(scope: TenantScope, documentId: string): Promise<ChunkRow[]> {
    const rows = await this.knex('chunks')
      .select(COLUMNS)
      .where({ tenant_id: scope.tenantId, document_id: documentId })
      .orderBy('ord');
    return rows.map(toChunk);
  }

  async getMany(scope: TenantScope, ids: string[]): Promise<ChunkRow[]> {
    if (ids.length === 0) return [];
    const rows = await this.knex('chunks').select(COLUMNS).where({ tenant_id: scope.tenantId }).whereIn('id', ids);
    return rows.map(toChunk);
  }

  async countByDocument(scope: TenantScope, documentId: string, trx: Knex = this.knex): Promise<number> {
    const [row] = await trx('chunks').where({ tenant_id: scope.tenantId, document_id: documentId }).count<{ count: string | number }[]>({ count: '*' });
    return Number(row?.count ?? 0);
  }

  async deleteByDocument(scope: TenantScope, documentId: string, trx: Knex = this.knex): Promise<number> {
    return trx('chunks').where({ tenant_id: scope.tenantId, document_id: documentId }).delete();
  }
}

const COLUMNS = ['id', 'tenant_id', 'document_id', 'ord', 'text', 'page', 'heading', 'lang', 'content_hash', 'token_count'];

function toChunk(row: Record<string, unknown>): ChunkRow {
  return {
    id: row.id as string,
    tenantId: row.tenant_id as string,
    documentId: row.document_id as string,
    ord: row.ord as number,
    text: row.text as string,
    page: row.page as number | null,
    heading: row.heading as string | null,
    lang: row.lang as ChunkLang,
    contentHash: row.content_hash as string,
    tokenCount: row.token_count as number,
  };
}
