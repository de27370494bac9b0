import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { signAccessToken, type Role } from '../../../lib/auth/jwt.ts';
import { loadConfig } from '../../../lib/config/env.ts';
import { createLogger } from '../../../lib/logging.ts';
import { tenantScope } from '../../../lib/ports/tenant-scope.ts';
import { bootNode, type RunningNode } from '../../../boot.ts';
import { indexFixture, type FixtureDocument } from '../../../test/support/search-fixtures.ts';
import type { SearchResult } from '../../../lib/search/types.ts';
import { httpJson } from '../../../test/support/http.ts';
import { tempDir, type Disposable } from '../../../test/support/services.ts';
import type { EmbedResult } from '../../emb/emb.service.ts';

/**
 * POST /api/v1/search through the real gateway of an embedded node: the starter
 * model served by the real emb service embeds the query, pgvector in PGlite holds
 * the vectors, PGlite the chunks and term statistics.
 */
describe('POST /api/v1/search (embedded node, starter model via emb)', () => {
  let node: RunningNode;
  let dir: Disposable<string>;
  let base: string;
  const token = (tenantId: string, roles: Role[] = ['viewer']) =>
    signAccessToken({ tenantId, userId: 'u1', roles }, node.runtime.jwtSecret, { issuer: 'ragmesh', ttlSeconds: 300 });
  const post = async (body: unknown, tenantId = 'acme') =>
    httpJson<SearchResult & { error?: { code: string; status: number; retryable: boolean; request_id: string } }>(`${base}/api/v1/search`, {
      method: 'POST',
      token: await token(tenantId),
      headers: { 'Content-Type': 'application/json' },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });

  before(async () => {
    dir = await tempDir();
    const env = { DATA_DIR: dir.value, PORT: '0', LOG_LEVEL: 'warn', SEARCH_LEG_TIMEOUT_MS: '3000' };
    node = await bootNode(loadConfig(env), createLogger('warn'));
    base = `http://127.0.0.1:${node.httpPort}`;
    const knex = (await node.runtime.stores.db()).knex;
    const vectors = await node.runtime.stores.vectors();
    const embed = async (texts: string[]) => {
      const alias = (await knex('model_flags').first()).alias as string;
      const res = (await node.broker.call('emb.embed', { alias, texts, kind: 'passage' })) as EmbedResult;
      return { alias: res.alias, version: res.version, vectors: res.vectors };
    };
    const docs: Array<[string, FixtureDocument]> = [
      ['acme', { sourceId: 'lease', title: 'Lease', mime: 'application/pdf', tags: ['law'], chunks: [{ lang: 'ru', page: 3, text: 'Арендатор обязан вернуть помещение по окончании срока договора.' }] }],
      ['acme', { sourceId: 'pumps', title: 'Pumps manual', chunks: [{ lang: 'en', page: 7, heading: 'Warranty', text: 'The warranty for centrifugal pumps lasts two years from delivery.' }] }],
      ['acme', { sourceId: 'typo', title: 'Notes', chunks: [{ lang: 'en', page: 1, text: 'centrifugel pumpz' }] }],
      ['globex', { sourceId: 'globex-secret', title: 'Secret', chunks: [{ lang: 'en', page: 1, text: 'The warranty for centrifugal pumps lasts two years from delivery.' }] }],
    ];
    for (const [tenant, doc] of docs) await indexFixture(knex, vectors, tenantScope(tenant), doc, embed);
  });
  after(async () => {
    await node?.stop();
    await dir?.dispose();
  });

  it('answers hits with document, page, heading, marked snippet, fused score and both ranks', async () => {
    const res = await post({ query: 'warranty of centrifugal pumps', limit: 5 });
    assert.equal(res.status, 200);
    assert.equal(res.body.degraded, null);
    assert.equal(res.body.dense?.alias, 'starter-ngram');
    const top = res.body.hits[0]!;
    assert.equal(top.sourceId, 'pumps');
    assert.equal(top.page, 7);
    assert.equal(top.heading, 'Warranty');
    assert.deepEqual(top.ranks, { lexical: 1, dense: 1 });
    assert.ok(top.score > 0);
    assert.match(top.snippet, /<mark>warranty<\/mark>/i);
    assert.ok(typeof res.body.tookMs === 'number');
    // The misspelt note is found by the n-gram leg only.
    const typo = res.body.hits.find((h) => h.sourceId === 'typo');
    assert.ok(typo && typo.ranks.lexical === null && typo.ranks.dense !== null);
  });

  it('never shows one tenant another tenant’s chunks', async () => {
    const acme = await post({ query: 'warranty centrifugal pumps', limit: 50 });
    assert.ok(acme.body.hits.every((h) => h.sourceId !== 'globex-secret'));
    const globex = await post({ query: 'warranty centrifugal pumps договора', limit: 50 }, 'globex');
    assert.deepEqual(globex.body.hits.map((h) => h.sourceId), ['globex-secret']);
  });

  it('matches Russian inflections: «договора» finds «договор»', async () => {
    const res = await post({ query: 'срок договор', mode: 'lexical' });
    assert.equal(res.status, 200);
    assert.deepEqual(res.body.hits.map((h) => [h.sourceId, h.page]), [['lease', 3]]);
  });

  it('answers hostile text with results or a clear 4xx in the error format', async () => {
    for (const query of [`'; drop table chunks; --`, 'pumps & | ! : * \\', '"unterminated pumps', 'pumps:* <-> !warranty']) {
      const res = await post({ query });
      assert.equal(res.status, 200, `${query}: ${JSON.stringify(res.body)}`);
      assert.equal(res.body.degraded, null);
    }
    const long = await post({ query: 'pumps '.repeat(2000) });
    assert.equal(long.status, 400);
    assert.equal(long.body.error!.code, 'QUERY_TOO_LONG');
    assert.equal(long.body.error!.retryable, false);
    assert.ok(long.body.error!.request_id);
    const empty = await post({ query: '  &|!:*  ' });
    assert.equal(empty.status, 400);
    assert.equal(empty.body.error!.code, 'EMPTY_QUERY');
    const wrongType = await post({ query: 42 });
    assert.ok(wrongType.status >= 400 && wrongType.status < 500);
    // The route's schema is the only validation: out-of-range numbers and ids that are not ids never reach the search.
    for (const bad of [{ limit: 1000 }, { limit: 0 }, { filters: { documentIds: ["1' or '1'='1"] } }, { mode: 'fuzzy' }, { mmr: { lambda: 2 } }]) {
      const res = await post({ query: 'pumps', ...bad });
      assert.equal(res.status, 422, JSON.stringify(bad));
      assert.equal(res.body.error!.code, 'VALIDATION_FAILED');
    }
    const noToken = await httpJson(`${base}/api/v1/search`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"query":"pumps"}' });
    assert.equal(noToken.status, 401);
    // The database still answers the same afterwards.
    assert.equal((await post({ query: 'pumps' })).body.hits.length > 0, true);
  });

  it('degrades to the lexical leg when the emb service is gone, with the reason', async () => {
    const emb = node.broker.getLocalService('emb');
    assert.ok(emb);
    await node.broker.destroyService(emb);
    const res = await post({ query: 'warranty pumps' });
    assert.equal(res.status, 200);
    assert.ok(res.body.degraded?.dense);
    assert.equal(res.body.dense, null);
    assert.equal(res.body.hits[0]!.sourceId, 'pumps');
    assert.deepEqual(res.body.hits[0]!.ranks, { lexical: 1, dense: null });
    const denseOnly = await post({ query: 'warranty pumps', mode: 'dense' });
    assert.equal(denseOnly.status, 503);
    assert.equal(denseOnly.body.error!.code, 'SEARCH_UNAVAILABLE');
    assert.equal(denseOnly.body.error!.retryable, true);
  });
});
