import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { tenantScope } from '../ports/tenant-scope.ts';
import { DATABASE_BACKENDS, type TestDatabase } from '../../test/support/databases.ts';
import { ChatsRepository } from './chats.ts';
import { TenantsRepository } from './tenants.ts';

for (const backend of DATABASE_BACKENDS) {
  describe(`chats repository on ${backend.name}`, () => {
    let t: TestDatabase;
    let chats: ChatsRepository;
    const A = tenantScope('acme');
    const B = tenantScope('globex');

    before(async () => {
      t = await backend.open();
      chats = new ChatsRepository(t.db.knex);
      const tenants = new TenantsRepository(t.db.knex);
      await tenants.recordMember(A, 'alice', ['editor']);
      await tenants.recordMember(A, 'bob', ['editor']);
      await tenants.recordMember(B, 'alice', ['editor']);
    });
    after(() => t.dispose());

    it('creates, lists most recent first, renames and deletes a user\'s chats only', async () => {
      const first = await chats.create(A, 'alice', 'First');
      const second = await chats.create(A, 'alice');
      assert.equal(second.title, 'New chat');
      await chats.addMessage(A, first.id, { role: 'user', content: 'bump' });
      assert.deepEqual((await chats.list(A, 'alice')).map((c) => c.id).slice(0, 2), [first.id, second.id], 'a new message moves the chat up');
      assert.deepEqual(await chats.list(A, 'bob'), []);
      assert.deepEqual(await chats.list(B, 'alice'), [], 'the same user id in another tenant is another person');

      assert.equal(await chats.rename(A, 'bob', first.id, 'Mine now'), null);
      assert.equal(await chats.rename(B, 'alice', first.id, 'Mine now'), null);
      assert.equal((await chats.rename(A, 'alice', first.id, 'Renamed'))?.title, 'Renamed');
      assert.equal(await chats.delete(A, 'bob', second.id), false);
      assert.equal(await chats.delete(B, 'alice', second.id), false);
      assert.equal(await chats.delete(A, 'alice', second.id), true);
      assert.equal(await chats.get(A, 'alice', second.id), null);
    });

    it('keeps messages in order with their sources and usage, and deletes them with the chat', async () => {
      const chat = await chats.create(A, 'alice', 'Lease');
      const question = await chats.addMessage(A, chat.id, { role: 'user', content: 'When is rent due?' });
      const sources = [{ n: 1, chunkId: 'c1', documentId: 'd1', title: 'Lease', page: 2 }];
      const answer = await chats.addMessage(A, chat.id, { role: 'assistant', content: 'By the fifth. [1]', sources, usage: { promptTokens: 40, completionTokens: 5, finishReason: 'stop' } });
      for (let i = 0; i < 3; i++) await chats.addMessage(A, chat.id, { role: i % 2 ? 'assistant' : 'user', content: `turn ${i}` });

      const all = await chats.listMessages(A, chat.id);
      assert.deepEqual(all.map((m) => m.content).slice(0, 2), ['When is rent due?', 'By the fifth. [1]']);
      assert.deepEqual(all.map((m) => m.id).slice(0, 2), [question.id, answer.id]);
      assert.deepEqual(all[1]!.sources, sources);
      assert.deepEqual(all[1]!.usage, { promptTokens: 40, completionTokens: 5, finishReason: 'stop' });
      assert.deepEqual(all[0]!.sources, []);
      assert.equal(all[0]!.usage, null);
      const recent = await chats.getWithRecentMessages(A, 'alice', chat.id, 2);
      assert.equal(recent?.chat.title, 'Lease');
      assert.deepEqual(recent?.recent.map((m) => m.content), ['turn 1', 'turn 2'], 'the last turns, oldest first');
      assert.deepEqual((await chats.getWithRecentMessages(A, 'alice', chat.id, 10))?.recent[1], all[1], 'a message read with its chat is the row as listMessages reads it');
      assert.equal(await chats.getWithRecentMessages(A, 'bob', chat.id, 10), null, "another user's chat: nothing, not even its messages");
      assert.equal(await chats.getWithRecentMessages(B, 'alice', chat.id, 10), null);
      assert.deepEqual((await chats.getWithRecentMessages(A, 'alice', (await chats.create(A, 'alice')).id, 10))?.recent, [], 'a chat with no messages yet');

      assert.deepEqual(await chats.listMessages(B, chat.id), []);

      await chats.delete(A, 'alice', chat.id);
      assert.deepEqual(await chats.listMessages(A, chat.id), []);
    });

    it('refuses a message into another tenant\'s chat (composite foreign key)', async () => {
      const chat = await chats.create(A, 'alice', 'Private');
      await assert.rejects(() => chats.addMessage(B, chat.id, { role: 'user', content: 'sneaking in' }));
      assert.equal((await chats.listMessages(A, chat.id)).length, 0);
    });
  });
}
