import { createHash, randomUUID } from 'node:crypto';
import type { Knex } from 'knex';
import { collectionFor, type VectorStore } from '../../lib/ports/vector-store.ts';
import type { TenantScope } from '../../lib/ports/tenant-scope.ts';
import { ChunksRepository, type ChunkLang } from '../../lib/repositories/chunks.ts';
import { DocumentsRepository } from '../../lib/repositories/documents.ts';

/**
 * Indexes a document the way ingest does — document row, chunk rows through
 * ChunksRepository, vectors of each chunk through the VectorStore under the chunk
 * id — for search tests that should not depend on the ingest pipeline.
 */
export interface FixtureDocument {
  sourceId: string;
  title?: string;
  mime?: string;
  tags?: string[];
  chunks: Array<{ text: string; lang: ChunkLang; page?: number; heading?: string }>;
}

export type PassageEmbedder = (texts: string[]) => Promise<{ alias: string; version: string; vectors: ArrayLike<number>[] }>;

export async function indexFixture(
  knex: Knex,
  vectors: VectorStore,
  scope: TenantScope,
  doc: FixtureDocument,
  embed: PassageEmbedder,
): Promise<{ documentId: string; chunkIds: string[] }> {
  await knex('tenants').insert({ id: scope.tenantId, name: scope.tenantId }).onConflict('id').ignore();
  const sha = (s: string) => createHash('sha256').update(s).digest('hex');
  const { document } = await new DocumentsRepository(knex).create(scope, {
    sourceId: doc.sourceId,
    title: doc.title ?? doc.sourceId,
    mime: doc.mime ?? 'text/plain',
    sizeBytes: doc.chunks.reduce((n, c) => n + c.text.length, 0),
    contentHash: sha(`${doc.sourceId}\n${doc.chunks.map((c) => c.text).join('\n')}`),
    tags: doc.tags ?? [],
  });
  const rows = await new ChunksRepository(knex).insertMany(
    scope,
    document.id,
    doc.chunks.map((c, ord) => ({
      id: randomUUID(),
      ord,
      text: c.text,
      lang: c.lang,
      page: c.page ?? null,
      heading: c.heading ?? null,
      contentHash: sha(c.text),
      tokenCount: c.text.split(/\s+/).length,
    })),
  );
  const embedded = await embed(rows.map((r) => r.text));
  const collection = collectionFor(embedded.alias, embedded.version);
  await vectors.ensureCollection({ name: collection, dimension: embedded.vectors[0]!.length });
  await vectors.upsert(
    scope,
    collection,
    rows.map((row, i) => ({
      id: row.id,
      vector: Array.from(embedded.vectors[i]!),
      payload: {
        source_id: doc.sourceId,
        document_id: document.id,
        chunk_id: row.id,
        page: row.page,
        lang: row.lang,
        mime: doc.mime ?? 'text/plain',
        version: 1,
        updated_at: new Date().toISOString(),
        tags: doc.tags ?? [],
        embed_model_alias: embedded.alias,
        embed_model_version: embedded.version,
      },
    })),
  );
  return { documentId: document.id, chunkIds: rows.map((r) => r.id) };
}
