import { httpJson } from './http.ts';

/**
 * What a deployment holds, read through its api as a client would: documents with
 * their chunks, chats with their messages, the model registry and flags, and the
 * hits of fixed searches in every mode. Two deployments holding the same data give
 * deepEqual states; timestamps are kept, so a restore must bring them back too.
 */
export interface DeploymentState {
  documents: unknown[];
  chunks: Record<string, unknown[]>;
  chats: unknown[];
  messages: Record<string, unknown[]>;
  models: unknown;
  searches: Record<string, unknown>;
}

export const FIXED_QUERIES = ['vacation days', 'warranty of pumps', 'арендная плата'];

export async function captureState(base: string, token: string): Promise<DeploymentState> {
  const get = async (path: string) => {
    const res = await httpJson(`${base}${path}`, { token });
    if (res.status !== 200) throw new Error(`GET ${path}: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body;
  };
  const documents = ((await get('/api/v1/documents?limit=100')).items as Array<{ id: string }>).sort((a, b) => a.id.localeCompare(b.id));
  const chunks: Record<string, unknown[]> = {};
  for (const d of documents) chunks[d.id] = (await get(`/api/v1/documents/${d.id}/chunks`)).items;
  const chats = ((await get('/api/v1/chats')).items as Array<{ id: string }>).sort((a, b) => a.id.localeCompare(b.id));
  const messages: Record<string, unknown[]> = {};
  for (const c of chats) messages[c.id] = (await get(`/api/v1/chats/${c.id}`)).messages ?? [];
  const models = (await get('/v1/models')).data;
  const searches: Record<string, unknown> = {};
  for (const query of FIXED_QUERIES) {
    for (const mode of ['lexical', 'dense', 'hybrid']) {
      const res = await httpJson(`${base}/api/v1/search`, {
        method: 'POST',
        token,
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ query, mode, limit: 5 }),
      });
      if (res.status !== 200) throw new Error(`search "${query}" ${mode}: ${res.status} ${JSON.stringify(res.body)}`);
      searches[`${mode}: ${query}`] = (res.body.hits as Array<Record<string, unknown>>).map((h) => ({ chunk: h.chunkId, document: h.documentId, score: h.score }));
    }
  }
  return { documents, chunks, chats, messages, models, searches };
}
