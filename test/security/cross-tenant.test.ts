import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { accessRoutes } from '../../services/api/routes/access.ts';
import { apiRouteModules } from '../../services/api/routes/index.ts';
import type { Endpoint } from '../../services/api/routes/module.ts';
import { startEmbeddedNode, type EmbeddedNode } from '../support/embedded.ts';
import { httpJson } from '../support/http.ts';
import { upload, waitForJob } from '../support/ingest.ts';

/** Bodies that pass each route's schema, so what answers is the tenant check, not validation. */
const BODIES: Record<string, unknown> = {
  'PATCH /api/v1/chats/:id': { title: 'taken over' },
  'POST /api/v1/chats/:id/messages': { content: 'what do you know?' },
  'PUT /api/v1/users/:userId/roles': { roles: ['viewer'] },
};
const QUERIES: Record<string, string> = {
  'GET /api/v1/chats/:id/messages/stream': '?content=hello',
};

/**
 * A walk generated from the route table: every authenticated route whose path carries a
 * tenant object's id (documents, jobs, chats, uploads, API keys, users, dead letters),
 * called by another tenant's admin with the first tenant's real ids, answers 404 (or
 * 403) in the error shape and never the object; afterwards every object reads back
 * unchanged for its own tenant. Model routes name deployment-wide models by alias, not
 * tenant objects, and are left out; PUT /api/v1/uploads/:id is public and refuses any
 * request without its own signature.
 */
describe('cross-tenant walk (every route carrying an id, with another tenant\'s ids)', () => {
  let node: EmbeddedNode;
  let endpoints: Endpoint[];
  const ids: Record<string, string> = {};
  let owner: string;
  let before_: Record<string, string>;

  before(async () => {
    node = await startEmbeddedNode();
    endpoints = [...apiRouteModules(node.node.runtime), accessRoutes(node.node.runtime, () => null)].flatMap((m) => m.endpoints).filter((e) => !e.public && /:[A-Za-z]+/.test(e.path));
    owner = await node.token(['tenant_admin', 'editor'], 'olga', 'owner-co');
    const uploaded = await upload(node.base, owner, { name: 'secret.txt', content: 'The launch code of owner-co is 4417. Nobody else may read this.', type: 'text/plain' });
    assert.equal(uploaded.status, 202, JSON.stringify(uploaded.body));
    ids.document = uploaded.body.document.id;
    ids.job = uploaded.body.job.id;
    await waitForJob(node.base, owner, ids.job!);
    ids.chat = (await httpJson(`${node.base}/api/v1/chats`, { method: 'POST', token: owner, headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ title: 'owner plans' }) })).body.id;
    ids.upload = (await httpJson(`${node.base}/api/v1/uploads`, { method: 'POST', token: owner, headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ filename: 'later.txt' }) })).body.uploadId;
    ids.apiKey = (await httpJson(`${node.base}/api/v1/api-keys`, { method: 'POST', token: owner, headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ name: 'owner key' }) })).body.id;
    ids.user = 'olga';
    for (const [what, id] of Object.entries(ids)) assert.ok(id, `${what} id`);
    before_ = await snapshot();
  });
  after(() => node.stop());

  /** What the owner reads of its objects: must not change under the walk. */
  const snapshot = async (): Promise<Record<string, string>> => {
    const read = async (path: string) => JSON.stringify((await httpJson(`${node.base}${path}`, { token: owner })).body);
    return {
      document: await read(`/api/v1/documents/${ids.document}`),
      chunks: await read(`/api/v1/documents/${ids.document}/chunks`),
      job: await read(`/api/v1/jobs/${ids.job}`),
      chat: await read(`/api/v1/chats/${ids.chat}`),
      keys: await read('/api/v1/api-keys'),
      users: await read('/api/v1/users'),
    };
  };

  const idFor = (e: Endpoint, param: string): string => {
    if (param === 'userId') return ids.user!;
    if (param === 'jobId' || e.path.startsWith('/api/v1/jobs/')) return ids.job!;
    if (e.path.startsWith('/api/v1/documents/')) return ids.document!;
    if (e.path.startsWith('/api/v1/chats/')) return ids.chat!;
    if (e.path.startsWith('/api/v1/uploads/')) return ids.upload!;
    if (e.path.startsWith('/api/v1/api-keys/')) return ids.apiKey!;
    return '';
  };

  it('answers every id-carrying route 404/403 for another tenant, and changes nothing', async () => {
    // Every role at once, so the permission table lets the intruder reach each handler.
    const intruder = await node.token(['admin', 'tenant_admin', 'editor', 'viewer'], 'ivan', 'intruder-co');
    let checks = 0;
    const skipped: string[] = [];
    for (const e of endpoints) {
      const key = `${e.method} ${e.path}`;
      const params = [...e.path.matchAll(/:([A-Za-z]+)/g)].map((m) => m[1]!);
      if (params.some((p) => !idFor(e, p))) {
        skipped.push(key);
        continue;
      }
      const path = e.path.replace(/:([A-Za-z]+)/g, (_m, p: string) => idFor(e, p)) + (QUERIES[key] ?? '');
      const body = BODIES[key] ?? (e.method === 'GET' || e.method === 'DELETE' ? undefined : {});
      const res = await fetch(`${node.base}${path}`, {
        method: e.method,
        headers: { Authorization: `Bearer ${intruder}`, ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}) },
        body: body !== undefined ? JSON.stringify(body) : undefined,
      });
      const text = await res.text();
      assert.ok(res.status === 404 || res.status === 403, `${key} → ${res.status} ${text.slice(0, 200)}`);
      const error = JSON.parse(text).error;
      assert.ok(error?.code && error?.message, `${key}: the error shape`);
      // Error messages may echo the id the intruder sent; nothing of the object itself may show.
      for (const secret of ['4417', 'launch code', 'owner plans', 'owner key', 'owner-co', 'secret.txt']) assert.ok(!text.includes(secret), `${key} leaks "${secret}"`);
      checks++;
    }
    assert.deepEqual(skipped.filter((k) => !k.includes('/admin/models/')), [], 'only model routes (deployment-wide, no tenant ids) are left out');
    assert.deepEqual(await snapshot(), before_, "the owner's objects are unchanged");
    console.log(`# cross-tenant walk: ${checks} routes called with another tenant's ids, ${skipped.length} model routes left out`);
  });
});
