import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import OpenAI from 'openai';
import { textPdf } from '../fixtures/documents.ts';
import { httpJson } from '../support/http.ts';
import { readSse, upload } from '../support/ingest.ts';
import { TestMesh } from '../support/mesh.ts';
import { parseSse } from '../../lib/streams.ts';

/**
 * A user's whole path over the mesh (api, models + llm, ingest worker: three processes
 * on RabbitMQ): upload, watch it become ready over SSE, ask over SSE and get tokens,
 * sources and a citation of the right page; the same through the openai client.
 */
describe('chat over the mesh', () => {
  let mesh: TestMesh;
  let token: string;

  before(async () => {
    mesh = await TestMesh.create();
    await Promise.all([mesh.start('gateway', 'api'), mesh.start('models', 'emb,llm,analyze,maintenance'), mesh.start('worker', 'ingest')]);
    await mesh.waitForDiscovery(await mesh.token('acme', 'ops', 'admin'));
    token = await mesh.token('acme', 'alice', 'editor');
  });
  after(() => mesh.stop());

  it('upload → ready over SSE → question over SSE with tokens, sources and a citation of page 3', async () => {
    const pdf = await textPdf([
      ['Supplier agreement', 'Parties: Acme and Globex.'],
      ['Section 2', 'Deliveries happen every Tuesday.'],
      ['Section 3', 'Invoices are paid within thirty days of receipt.'],
    ]);
    const res = await upload(mesh.apiUrl, token, { name: 'agreement.pdf', content: pdf });
    assert.equal(res.status, 202);
    const status = await readSse(`${mesh.apiUrl}/api/v1/documents/${res.body.document.id}/events`, token, (evs) =>
      evs.some((e) => e.event === 'job' && ['ready', 'failed'].includes(e.data.status)),
    );
    assert.equal(status.filter((e) => e.event === 'job').at(-1)!.data.status, 'ready');

    const chat = (await httpJson(`${mesh.apiUrl}/api/v1/chats`, { method: 'POST', token })).body;
    const answer = await fetch(`${mesh.apiUrl}/api/v1/chats/${chat.id}/messages`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ content: 'Within how many days are invoices paid?' }),
    });
    const events = parseSse(await answer.text());
    assert.deepEqual([...new Set(events.map((e) => e.event))], ['meta', 'sources', 'token', 'done']);
    const text = events.filter((e) => e.event === 'token').map((e) => e.data.text).join('');
    assert.match(text, /Invoices are paid within thirty days of receipt\./);
    const done = events.at(-1)!.data;
    assert.equal(done.citations[0].page, 3);
    assert.equal(done.citations[0].documentId, res.body.document.id);
  });

  it('answers the same through the openai client with stream: true', async () => {
    const client = new OpenAI({ baseURL: `${mesh.apiUrl}/v1`, apiKey: token, maxRetries: 0 });
    const stream = await client.chat.completions.create({ model: 'ragmesh', messages: [{ role: 'user', content: 'When do deliveries happen?' }], stream: true });
    let text = '';
    let chunks = 0;
    for await (const chunk of stream) {
      chunks++;
      text += chunk.choices[0]?.delta?.content ?? '';
    }
    assert.ok(chunks > 3);
    assert.match(text, /Deliveries happen every Tuesday\./);
  });
});
