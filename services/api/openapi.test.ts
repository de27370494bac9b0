import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startEmbeddedNode, type EmbeddedNode } from '../../test/support/embedded.ts';
import { httpJson } from '../../test/support/http.ts';
import { upload, waitForJob } from '../../test/support/ingest.ts';
import { schemaProblems } from '../../test/support/json-schema.ts';

type Operation = {
  responses: Record<string, { content?: Record<string, { schema: Record<string, unknown> }> }>;
  'x-error-codes': string[];
  parameters?: Array<{ name: string; in: string }>;
};

describe('/api/openapi.json describes every route, and every route answers as it says', () => {
  let embedded: EmbeddedNode;
  let doc: { openapi: string; paths: Record<string, Record<string, Operation>> } & Record<string, unknown>;
  const checked = new Set<string>();

  before(async () => {
    embedded = await startEmbeddedNode();
    doc = (await httpJson(`${embedded.base}/api/openapi.json`)).body;
  });
  after(() => embedded.stop());

  /** Calls a route and checks the real answer against the operation the document gives it. */
  async function call(method: string, template: string, path: string, init: { token?: string; body?: unknown; raw?: string | FormData; headers?: Record<string, string> } = {}) {
    const operation = doc.paths[template]?.[method.toLowerCase()];
    assert.ok(operation, `${method} ${template} is in the document`);
    const headers: Record<string, string> = { ...(init.headers ?? {}) };
    if (init.body !== undefined) headers['Content-Type'] = 'application/json';
    const controller = new AbortController();
    const res = await fetch(`${embedded.base}${path}`, {
      method,
      headers: { ...headers, ...(init.token ? { Authorization: `Bearer ${init.token}` } : {}) },
      body: init.raw ?? (init.body === undefined ? undefined : JSON.stringify(init.body)),
      signal: controller.signal,
    });
    const type = res.headers.get('content-type') ?? '';
    let body: unknown = null;
    if (type.startsWith('text/event-stream')) controller.abort(); // an open stream: its headers are the answer
    else {
      const text = await res.text();
      body = type.includes('json') ? JSON.parse(text) : text;
    }
    const declared = operation.responses[String(res.status)];
    assert.ok(declared, `${method} ${path} answered ${res.status}, which the document does not list (${Object.keys(operation.responses).join(', ')})`);
    if (res.status >= 400) {
      const code = (body as { error: { code: string } }).error.code;
      assert.ok(operation['x-error-codes'].includes(code), `${method} ${template}: ${code} is not among its declared codes`);
      assert.deepEqual(schemaProblems(body, { $ref: '#/components/schemas/Error' }, doc), []);
    } else if (declared.content) {
      const [contentType, media] = Object.entries(declared.content)[0]!;
      assert.ok(type.startsWith(contentType.split(';')[0]!), `${method} ${path}: content-type ${type}, declared ${contentType}`);
      if (contentType === 'application/json') assert.deepEqual(schemaProblems(body, media.schema, doc), [], `${method} ${path}: ${JSON.stringify(body).slice(0, 300)}`);
    }
    checked.add(`${method} ${template}`);
    return { status: res.status, body: body as any };
  }

  it('is OpenAPI 3.1 with every route, its parameters and its error codes', () => {
    assert.equal(doc.openapi, '3.1.0');
    const search = doc.paths['/api/v1/search']!.post!;
    assert.ok(search['x-error-codes'].includes('QUERY_TOO_LONG'));
    assert.ok((doc.paths['/api/v1/chats/{id}']!.get!.parameters ?? []).some((p) => p.name === 'id' && p.in === 'path'));
    for (const path of ['/healthz', '/api/v1/documents', '/api/v1/jobs/{id}/retry', '/v1/chat/completions', '/api/v1/admin/dead-letters/{jobId}/replay']) assert.ok(doc.paths[path], path);
  });

  it('every route answers within its description', async () => {
    const editor = await embedded.token(['editor']);
    const viewer = await embedded.token(['viewer']);
    const admin = await embedded.token(['admin']);
    const missing = '00000000-0000-4000-8000-000000000000';

    await call('GET', '/healthz', '/healthz');
    await call('GET', '/readyz', '/readyz');
    await call('GET', '/api/version', '/api/version');
    await call('GET', '/metrics', '/metrics');
    await call('GET', '/api/openapi.json', '/api/openapi.json');
    await call('GET', '/api/v1/me', '/api/v1/me', { token: editor });
    await call('GET', '/api/v1/status', '/api/v1/status', { token: viewer });
    await call('GET', '/api/v1/status', '/api/v1/status', { token: admin });

    const uploaded = await upload(embedded.base, editor, { name: 'pumps.txt', content: 'Centrifugal pumps move water.\n\nThe warranty lasts two years.' });
    assert.equal(uploaded.status, 202);
    await waitForJob(embedded.base, editor, uploaded.body.job.id);
    const documentId = uploaded.body.document.id as string;
    const jobId = uploaded.body.job.id as string;
    const form = new FormData();
    form.append('file', new Blob([new Uint8Array(0)]), 'empty.txt');
    await call('POST', '/api/v1/documents', '/api/v1/documents', { token: editor, raw: form });
    await call('GET', '/api/v1/documents', '/api/v1/documents', { token: editor });
    await call('GET', '/api/v1/documents/{id}', `/api/v1/documents/${documentId}`, { token: editor });
    await call('GET', '/api/v1/documents/{id}', `/api/v1/documents/${missing}`, { token: editor });
    await call('GET', '/api/v1/documents/{id}/chunks', `/api/v1/documents/${documentId}/chunks`, { token: editor });
    await call('GET', '/api/v1/documents/{id}/events', `/api/v1/documents/${documentId}/events`, { token: editor });
    await call('GET', '/api/v1/jobs', '/api/v1/jobs', { token: editor });
    await call('GET', '/api/v1/jobs/events', '/api/v1/jobs/events', { token: editor });
    await call('GET', '/api/v1/jobs/{id}', `/api/v1/jobs/${jobId}`, { token: editor });
    await call('POST', '/api/v1/jobs/{id}/cancel', `/api/v1/jobs/${jobId}/cancel`, { token: editor });
    await call('POST', '/api/v1/jobs/{id}/retry', `/api/v1/jobs/${jobId}/retry`, { token: viewer });
    await call('POST', '/api/v1/jobs/{id}/retry', `/api/v1/jobs/${jobId}/retry`, { token: editor });
    await call('GET', '/api/v1/admin/dead-letters', '/api/v1/admin/dead-letters', { token: admin });
    await call('POST', '/api/v1/admin/dead-letters/{jobId}/replay', `/api/v1/admin/dead-letters/${jobId}/replay`, { token: admin });

    const presign = await call('POST', '/api/v1/uploads', '/api/v1/uploads', { token: editor });
    await call('PUT', '/api/v1/uploads/{id}', new URL(presign.body.url, embedded.base).pathname + new URL(presign.body.url, embedded.base).search, { raw: 'Valves stop water.' });
    await call('POST', '/api/v1/uploads/{id}/complete', `/api/v1/uploads/${presign.body.uploadId}/complete`, { token: editor, body: { filename: 'valves.txt' } });

    await call('POST', '/api/v1/search', '/api/v1/search', { token: editor, body: { query: 'pumps warranty' } });
    await call('POST', '/api/v1/search', '/api/v1/search', { token: editor, body: { query: 'pumps', limit: 0 } });

    const chat = await call('POST', '/api/v1/chats', '/api/v1/chats', { token: editor, body: { title: 'Pumps' } });
    await call('GET', '/api/v1/chats', '/api/v1/chats', { token: editor });
    await call('GET', '/api/v1/chats/{id}', `/api/v1/chats/${chat.body.id}`, { token: editor });
    await call('PATCH', '/api/v1/chats/{id}', `/api/v1/chats/${chat.body.id}`, { token: editor, body: { title: 'Pumps and valves' } });
    await call('POST', '/api/v1/chats/{id}/messages', `/api/v1/chats/${chat.body.id}/messages`, { token: editor, body: { content: '   ' } });
    await call('POST', '/api/v1/chats/{id}/messages', `/api/v1/chats/${chat.body.id}/messages`, { token: editor, body: { content: 'How long is the warranty?' } });
    await call('GET', '/api/v1/chats/{id}/messages/stream', `/api/v1/chats/${chat.body.id}/messages/stream?content=${encodeURIComponent('What moves water?')}`, { token: editor });
    await call('DELETE', '/api/v1/chats/{id}', `/api/v1/chats/${chat.body.id}`, { token: editor });
    await call('DELETE', '/api/v1/chats/{id}', `/api/v1/chats/${chat.body.id}`, { token: editor });

    await call('GET', '/v1/models', '/v1/models', { token: editor });
    await call('POST', '/v1/embeddings', '/v1/embeddings', { token: editor, body: { model: 'starter-ngram', input: 'pumps' } });
    await call('POST', '/v1/chat/completions', '/v1/chat/completions', { token: editor, body: { model: 'ragmesh', messages: [{ role: 'user', content: 'What moves water?' }] } });
    await call('POST', '/v1/chat/completions', '/v1/chat/completions', { token: editor, body: { model: 'gpt-9', messages: [{ role: 'user', content: 'x' }] } });

    await call('GET', '/api/v1/admin/maintenance', '/api/v1/admin/maintenance', { token: admin });
    await call('PUT', '/api/v1/admin/maintenance', '/api/v1/admin/maintenance', { token: admin, body: { enabled: false } });
    await call('GET', '/api/v1/admin/backups', '/api/v1/admin/backups', { token: viewer });
    await call('POST', '/api/v1/admin/backups', '/api/v1/admin/backups', { token: viewer });

    await call('GET', '/api/v1/documents/{id}/analysis', `/api/v1/documents/${documentId}/analysis`, { token: editor });
    await call('POST', '/api/v1/documents/{id}/analyses', `/api/v1/documents/${documentId}/analyses`, { token: viewer });
    await call('POST', '/api/v1/documents/{id}/analyses', `/api/v1/documents/${missing}/analyses`, { token: editor });
    await call('POST', '/api/v1/admin/sweeps', '/api/v1/admin/sweeps', { token: viewer });
    await call('GET', '/api/v1/admin/models', '/api/v1/admin/models', { token: admin });
    await call('GET', '/api/v1/admin/models/status', '/api/v1/admin/models/status', { token: admin });
    await call('GET', '/api/v1/admin/models/events', '/api/v1/admin/models/events', { token: admin });
    await call('GET', '/api/v1/admin/models/{alias}/{version}/coverage', '/api/v1/admin/models/starter-ngram/1/coverage', { token: viewer });
    for (const [method, template, path] of [
      ['POST', '/api/v1/admin/models', '/api/v1/admin/models'],
      ['POST', '/api/v1/admin/models/{alias}/switch', '/api/v1/admin/models/x/switch'],
      ['POST', '/api/v1/admin/models/{alias}/rollback', '/api/v1/admin/models/x/rollback'],
      ['POST', '/api/v1/admin/models/{alias}/compare', '/api/v1/admin/models/x/compare'],
      ['POST', '/api/v1/admin/models/{alias}/{version}/reindex', '/api/v1/admin/models/x/1/reindex'],
      ['POST', '/api/v1/admin/models/{alias}/{version}/reindex/cancel', '/api/v1/admin/models/x/1/reindex/cancel'],
      ['DELETE', '/api/v1/admin/models/{alias}/{version}', '/api/v1/admin/models/x/1'],
    ] as const) {
      assert.equal((await call(method, template, path, { token: editor, body: {} })).status, 403);
    }
    await call('GET', '/', '/');
    await call('GET', '/assets/app.js', '/assets/app.js');
    await call('GET', '/assets/app.css', '/assets/app.css');

    await call('DELETE', '/api/v1/documents/{id}', `/api/v1/documents/${documentId}`, { token: editor });

    // Security: JWKS, API keys, users, audit.
    await call('GET', '/.well-known/jwks.json', '/.well-known/jwks.json');
    const created = await call('POST', '/api/v1/api-keys', '/api/v1/api-keys', { token: admin, body: { name: 'openapi' } });
    assert.equal(created.status, 201);
    await call('GET', '/api/v1/api-keys', '/api/v1/api-keys', { token: admin });
    await call('DELETE', '/api/v1/api-keys/{id}', `/api/v1/api-keys/${created.body.id}`, { token: admin });
    await call('GET', '/api/v1/users', '/api/v1/users', { token: admin });
    await call('PUT', '/api/v1/users/{userId}/roles', '/api/v1/users/nobody-here/roles', { token: admin, body: { roles: ['viewer'] } });
    await call('GET', '/api/v1/audit', '/api/v1/audit?action=api-key.create', { token: admin });

    // Every operation of the document was called above: a new route needs a call here.
    const all = Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`));
    assert.deepEqual(all.filter((op) => !checked.has(op)), []);
  });
});
