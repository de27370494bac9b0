/**
 * The thread of a PGliteThread (pglite-thread.ts): one PGlite instance, statements in,
 * results out, in the order they arrive (PGlite runs one at a time; knex holds its one
 * connection for a transaction, so a transaction's statements are never interleaved).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { createPglite, type Request, type Reply, type WireError } from './pglite-thread.ts';

const { dataDir } = workerData as { dataDir: string };
const port = parentPort!;

/** A PostgreSQL error's fields (code, detail, position…) as plain values the other thread rebuilds. */
function wireError(err: unknown): WireError {
  const e = (err ?? {}) as Record<string, unknown>;
  const fields: Record<string, string | number | boolean | null> = {};
  for (const [k, v] of Object.entries(e)) {
    if (v === null || ['string', 'number', 'boolean'].includes(typeof v)) fields[k] = v as string | number | boolean | null;
  }
  return { name: typeof e.name === 'string' ? e.name : 'Error', message: String(e.message ?? err), fields };
}

try {
  const pglite = await createPglite(dataDir);
  port.on('message', async (req: Request) => {
    let reply: Reply;
    try {
      switch (req.op) {
        case 'query':
          reply = { id: req.id, ok: true, value: await pglite.query(req.sql, req.params, req.options) };
          break;
        case 'exec':
          reply = { id: req.id, ok: true, value: await pglite.exec(req.sql) };
          break;
        case 'dump': {
          const bytes = await (await pglite.dumpDataDir(req.compression)).arrayBuffer();
          port.postMessage({ id: req.id, ok: true, value: bytes } satisfies Reply, [bytes]);
          return;
        }
        case 'close':
          await pglite.close();
          port.postMessage({ id: req.id, ok: true, value: null } satisfies Reply);
          port.close();
          return;
      }
    } catch (err) {
      reply = { id: req.id, ok: false, error: wireError(err) };
    }
    port.postMessage(reply);
  });
  port.postMessage({ id: 0, ok: true, value: 'ready' } satisfies Reply);
} catch (err) {
  port.postMessage({ id: 0, ok: false, error: wireError(err) } satisfies Reply);
}
