import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { buffer } from 'node:stream/consumers';
import { describe, it } from 'node:test';
import { QdrantSnapshots } from './qdrant.ts';

/**
 * The Qdrant half of a backup against a real Qdrant: a collection snapshotted,
 * dropped, and restored from the snapshot with the same points. Runs when QDRANT_URL
 * points at a server (none can run on these machines).
 */
const url = process.env.QDRANT_URL;
const apiKey = process.env.QDRANT_API_KEY ?? null;

async function qdrant(method: string, path: string, body?: unknown): Promise<any> {
  const res = await fetch(`${url}${path}`, {
    method,
    headers: { 'Content-Type': 'application/json', ...(apiKey ? { 'api-key': apiKey } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  assert.ok(res.ok, `Qdrant ${method} ${path}: ${res.status} ${await res.text().catch(() => '')}`);
  return res.json();
}

describe('backup: Qdrant snapshots', () => {
  it('snapshots a collection, and restores it into a Qdrant without it with every point', { skip: url ? false : 'QDRANT_URL is not set (no Qdrant server can run on this machine)' }, async () => {
    const collection = `backup_${randomUUID().slice(0, 8)}`;
    const snapshots = new QdrantSnapshots(url!, apiKey);
    await qdrant('PUT', `/collections/${collection}`, { vectors: { size: 4, distance: 'Cosine' } });
    try {
      const points = Array.from({ length: 25 }, (_, i) => ({ id: randomUUID(), vector: [i + 1, (i * 7) % 5, 1, i % 3], payload: { tenant_id: 'acme', ord: i } }));
      await qdrant('PUT', `/collections/${collection}/points?wait=true`, { points });
      assert.ok((await snapshots.collections()).includes(collection));

      const snapshot = await snapshots.snapshot(collection);
      const bytes = await buffer(snapshot.stream);
      await snapshot.discard();
      assert.ok(bytes.length > 0);

      await qdrant('DELETE', `/collections/${collection}`);
      assert.ok(!(await snapshots.collections()).includes(collection));
      await snapshots.restore(collection, bytes);

      const scrolled = await qdrant('POST', `/collections/${collection}/points/scroll`, { limit: 100, with_payload: true, with_vector: true });
      const byId = new Map(scrolled.result.points.map((p: { id: string; payload: { ord: number } }) => [p.id, p.payload.ord]));
      assert.equal(byId.size, points.length);
      for (const p of points) assert.equal(byId.get(p.id), p.payload.ord);
    } finally {
      await qdrant('DELETE', `/collections/${collection}`).catch(() => undefined);
    }
  });
});
