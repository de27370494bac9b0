import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { tenantScope } from '../../ports/tenant-scope.ts';
import type { VectorPayload, VectorPoint, VectorStore } from '../../ports/vector-store.ts';
import { DATABASE_BACKENDS } from '../../../test/support/databases.ts';
import { PgVectorStore } from './pgvector.ts';
import { QdrantVectorStore } from './qdrant.ts';
import { UsearchVectorStore } from './usearch.ts';

const A = tenantScope('tenant-a');
const B = tenantScope('tenant-b');

function payload(documentId: string, extra: Partial<VectorPayload> = {}): VectorPayload {
  return {
    source_id: `src-${documentId.slice(0, 8)}`,
    document_id: documentId,
    chunk_id: randomUUID(),
    page: 1,
    lang: 'en',
    mime: 'text/plain',
    version: 1,
    updated_at: new Date('2026-11-24T00:00:00Z').toISOString(),
    tags: [],
    embed_model_alias: 'test',
    embed_model_version: 'v1',
    ...extra,
  };
}

const unit = (v: number[]) => {
  const n = Math.hypot(...v);
  return v.map((x) => x / n);
};

/** The same behaviour from every vector backend; Qdrant's run needs QDRANT_URL (no server can run here). */
function vectorStoreContract(name: string, open: () => Promise<{ store: VectorStore; dispose(): Promise<void> }>) {
  describe(`VectorStore contract: ${name}`, () => {
    let store: VectorStore;
    let dispose: () => Promise<void>;
    const collection = `contract_${randomUUID().slice(0, 8)}`;
    const docA = randomUUID();
    const docA2 = randomUUID();
    const docB = randomUUID();

    before(async () => {
      ({ store, dispose } = await open());
      await store.ensureCollection({ name: collection, dimension: 3 });
      await store.ensureCollection({ name: collection, dimension: 3 }); // idempotent
    });
    after(async () => {
      await store.dropCollection(collection).catch(() => undefined);
      await dispose();
    });

    it('an alias (where the store has them) follows activate() from one collection to another', async (t) => {
      if (!store.activate) return t.skip(`${store.backend} has no collection aliases; search names the version's collection`);
      const other = `${collection}_b`;
      const alias = `alias_${randomUUID().slice(0, 8)}`;
      await store.ensureCollection({ name: other, dimension: 3 });
      try {
        const scope = tenantScope('t-alias');
        const point = (id: string, doc: string) => ({ id, vector: [1, 0, 0], payload: payload(doc) });
        await store.upsert(scope, collection, [point(randomUUID(), docA)]);
        await store.upsert(scope, other, [point(randomUUID(), docB)]);
        await store.activate(alias, collection);
        assert.deepEqual((await store.search(scope, alias, [1, 0, 0], { limit: 5 })).map((h) => h.payload.document_id), [docA]);
        await store.activate(alias, other);
        assert.deepEqual((await store.search(scope, alias, [1, 0, 0], { limit: 5 })).map((h) => h.payload.document_id), [docB]);
        await store.deleteByDocument(scope, collection, [docA]);
      } finally {
        await store.dropCollection(other).catch(() => undefined);
      }
    });

    it('refuses to reuse a collection with another dimension', async () => {
      await assert.rejects(() => store.ensureCollection({ name: collection, dimension: 4 }), /dimension/);
    });

    it('finds nearest neighbours by cosine, best first, within the tenant only', async () => {
      const points: VectorPoint[] = [
        { id: randomUUID(), vector: unit([1, 0, 0]), payload: payload(docA, { tags: ['contract'] }) },
        { id: randomUUID(), vector: unit([0.9, 0.1, 0]), payload: payload(docA2, { lang: 'ru', tags: ['law'] }) },
        { id: randomUUID(), vector: unit([0, 1, 0]), payload: payload(docA) },
      ];
      await store.upsert(A, collection, points);
      // Tenant B's point is the exact query vector: it must still never show up for A.
      await store.upsert(B, collection, [{ id: randomUUID(), vector: unit([1, 0, 0]), payload: payload(docB) }]);

      const hits = await store.search(A, collection, unit([1, 0, 0]), { limit: 10 });
      assert.equal(hits.length, 3);
      assert.deepEqual(hits.map((h) => h.id), [points[0]!.id, points[1]!.id, points[2]!.id]);
      assert.ok(Math.abs(hits[0]!.score - 1) < 1e-5);
      assert.ok(hits.every((h) => h.payload.tenant_id === 'tenant-a'));
      assert.equal(hits[1]!.payload.lang, 'ru');
      assert.deepEqual(hits[1]!.payload.tags, ['law']);

      const bHits = await store.search(B, collection, unit([1, 0, 0]), { limit: 10 });
      assert.deepEqual(bHits.map((h) => h.payload.document_id), [docB]);
    });

    it('lists the documents that have points, per tenant', async () => {
      assert.deepEqual(await store.documentIds(A, collection), [docA, docA2].sort());
      assert.deepEqual(await store.documentIds(B, collection), [docB]);
    });

    it('filters by tags, language and document', async () => {
      const byTag = await store.search(A, collection, unit([1, 0, 0]), { limit: 10, filter: { tags: ['law', 'nothing'] } });
      assert.deepEqual(byTag.map((h) => h.payload.document_id), [docA2]);
      const byLang = await store.search(A, collection, unit([1, 0, 0]), { limit: 10, filter: { langs: ['en'] } });
      assert.equal(byLang.length, 2);
      const byDoc = await store.search(A, collection, unit([0, 1, 0]), { limit: 1, filter: { documentIds: [docA] } });
      assert.equal(byDoc.length, 1);
      assert.equal(byDoc[0]!.payload.document_id, docA);
    });

    it('upserts by id and deletes by document within the tenant', async () => {
      const id = randomUUID();
      await store.upsert(A, collection, [{ id, vector: unit([0, 0, 1]), payload: payload(docA2) }]);
      await store.upsert(A, collection, [{ id, vector: unit([0, 0, 1]), payload: payload(docA2, { page: 7 }) }]);
      const [hit] = await store.search(A, collection, unit([0, 0, 1]), { limit: 1 });
      assert.equal(hit!.id, id);
      assert.equal(hit!.payload.page, 7);
      assert.equal(await store.count(A, collection), 4);

      await store.deleteByDocument(B, collection, [docA2]); // B cannot delete A's vectors
      assert.equal(await store.count(A, collection), 4);
      await store.upsert(A, collection, [{ id: randomUUID(), vector: unit([0, 1, 1]), payload: payload(docA2, { version: 2 }) }]);
      await store.deleteByDocument(A, collection, [docA2], { below: 2 });
      assert.equal(await store.count(A, collection), 3, 'only the two version-1 points went');
      await store.deleteByDocument(A, collection, [docA2], { only: 2 });
      assert.equal(await store.count(A, collection), 2);
      await store.upsert(A, collection, [{ id: randomUUID(), vector: unit([0, 1, 1]), payload: payload(docA2, { version: 3 }) }]);
      await store.deleteByDocument(A, collection, [docA2]);
      assert.equal(await store.count(A, collection), 2);
      assert.equal(await store.count(B, collection), 1);
    });
  });
}

const pglite = DATABASE_BACKENDS.find((b) => b.name === 'pglite')!;
vectorStoreContract('pgvector on PGlite (embedded)', async () => {
  const t = await pglite.open();
  return { store: new PgVectorStore(t.db), dispose: t.dispose };
});

vectorStoreContract('usearch in memory over pgvector (embedded default)', async () => {
  const t = await pglite.open();
  return { store: new UsearchVectorStore(t.db), dispose: t.dispose };
});

const postgres = DATABASE_BACKENDS.find((b) => b.name === 'postgres')!;
vectorStoreContract('plain arrays in PostgreSQL (no pgvector)', async () => {
  const t = await postgres.open();
  return { store: new PgVectorStore(t.db, 'postgres'), dispose: t.dispose };
});

const qdrantUrl = process.env.QDRANT_URL;
if (qdrantUrl) {
  vectorStoreContract(`qdrant at ${qdrantUrl}`, async () => ({
    store: new QdrantVectorStore(qdrantUrl, process.env.QDRANT_API_KEY ?? null),
    dispose: async () => undefined,
  }));
} else {
  describe('VectorStore contract: qdrant', () => {
    it('runs when QDRANT_URL points at a Qdrant server', { skip: 'QDRANT_URL is not set (no Qdrant server can run on this machine)' }, () => {});
  });
}

describe('first use of a collection by concurrent jobs (real PostgreSQL)', () => {
  it('creates the store and a new collection once, without a duplicate-type race, from many stores at once', async () => {
    const t = await postgres.open();
    try {
      // Separate stores stand for separate processes: none knows what the others created.
      const stores = Array.from({ length: 8 }, () => new PgVectorStore(t.db, 'postgres'));
      const name = `race_${randomUUID().slice(0, 8)}`;
      const results = await Promise.allSettled(stores.map((s) => s.ensureCollection({ name, dimension: 3 })));
      assert.deepEqual(results.filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason)), []);
      const [row] = await t.db.knex('vector_collections').where({ name }).select('dimension');
      assert.equal(row.dimension, 3);
      await stores[0]!.upsert(A, name, [{ id: randomUUID(), vector: unit([1, 0, 0]), payload: payload(randomUUID()) }]);
      assert.equal(await stores[7]!.count(A, name), 1);
      await stores[0]!.dropCollection(name);
    } finally {
      await t.dispose();
    }
  });
});

describe('a search the caller gave up on (real PostgreSQL, plain arrays)', () => {
  it('is stopped in the server at timeoutMs instead of running on, and the store keeps answering', async () => {
    const t = await postgres.open();
    const store = new PgVectorStore(t.db, 'postgres');
    const name = `slow_${randomUUID().slice(0, 8)}`;
    try {
      // Enough vectors of a real model's width that an exact scan takes far longer than 1 ms.
      const dimension = 1024;
      await store.ensureCollection({ name, dimension });
      const vector = (seed: number) => unit(Array.from({ length: dimension }, (_, i) => Math.sin(seed * 7.1 + i * 0.37)));
      for (let batch = 0; batch < 4; batch++) {
        await store.upsert(A, name, Array.from({ length: 500 }, (_, i) => ({ id: randomUUID(), vector: vector(batch * 500 + i), payload: payload(randomUUID()) })));
      }
      await assert.rejects(
        () => store.search(A, name, vector(1), { limit: 10, timeoutMs: 1 }),
        // PostgreSQL's statement timeout (57014), classified where it arises.
        (err: Error & { type?: string }) => err.type === 'DATABASE_TIMEOUT',
      );
      const [running] = await t.db.knex('pg_stat_activity').where('state', 'active').andWhere('query', 'like', `%vec_${name}%`).count({ n: '*' });
      assert.equal(Number(running!.n), 0, 'no scan left running in the server');
      // The timeout was local to that search: the next one, with time to spare, answers.
      const hits = await store.search(A, name, vector(1), { limit: 3, timeoutMs: 60_000 });
      assert.equal(hits.length, 3);
      assert.ok(hits[0]!.score > 0.999);
    } finally {
      await store.dropCollection(name).catch(() => undefined);
      await t.dispose();
    }
  });
});
