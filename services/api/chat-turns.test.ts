import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ChatTurns, heldEvents, sameTurns } from './chat-turns.ts';

const q = (content: string) => ({ role: 'user' as const, content });
const a = (content: string) => ({ role: 'assistant' as const, content });

describe("ChatTurns (the chat route's known turns)", () => {
  it('keys by tenant, user and chat, and keeps the last turns only', () => {
    const turns = new ChatTurns(3);
    turns.set('acme', 'alice', 'c1', [q('1'), a('2'), q('3'), a('4')]);
    assert.deepEqual(turns.get('acme', 'alice', 'c1')!.turns, [a('2'), q('3'), a('4')]);
    assert.equal(turns.get('acme', 'bob', 'c1'), undefined);
    assert.equal(turns.get('globex', 'alice', 'c1'), undefined);
  });

  it('advances an entry by an answer only while nothing else replaced it', () => {
    const turns = new ChatTurns(4);
    const read = turns.set('acme', 'alice', 'c1', [q('1'), a('2')]);
    turns.advance(read, [q('3'), a('4')]);
    const now = turns.get('acme', 'alice', 'c1')!;
    assert.deepEqual(now.turns, [q('1'), a('2'), q('3'), a('4')]);
    // Two answers started from the same read: the one that ends second finds the entry changed.
    const concurrent = turns.set('acme', 'alice', 'c1', now.turns);
    const other = turns.set('acme', 'alice', 'c1', now.turns);
    turns.advance(concurrent, [q('5'), a('6')]);
    assert.equal(turns.get('acme', 'alice', 'c1'), undefined, 'the order of the rows is not known here: forgotten');
    turns.advance(other, [q('7'), a('8')]);
    assert.equal(turns.get('acme', 'alice', 'c1'), undefined);
  });

  it('forgets a chat whose answer failed, whatever entry it holds now', () => {
    const turns = new ChatTurns(4);
    const used = turns.set('acme', 'alice', 'c1', [q('1')]);
    turns.set('acme', 'alice', 'c1', [q('1'), a('2')]);
    turns.forgetChat(used);
    assert.equal(turns.get('acme', 'alice', 'c1'), undefined);
    turns.forgetChat(null);
    assert.equal(turns.size, 0);
  });

  it('drops the least recently used chats past its size', () => {
    const turns = new ChatTurns(2, 10, 2);
    turns.set('t', 'u', 'c1', [q('aaaa')]);
    turns.set('t', 'u', 'c2', [q('bbbb')]);
    turns.get('t', 'u', 'c1');
    turns.set('t', 'u', 'c3', [q('cc')]);
    assert.equal(turns.get('t', 'u', 'c2'), undefined, 'least recently used');
    assert.ok(turns.get('t', 'u', 'c1') && turns.get('t', 'u', 'c3'));
    turns.set('t', 'u', 'c4', [q('dddddd')]); // 4 + 2 + 6 characters: over 10
    assert.equal(turns.size, 2);
    const huge = turns.set('t', 'u', 'c5', [q('x'.repeat(11))]);
    assert.deepEqual(huge.turns, [q('x'.repeat(11))], 'too big to keep, still usable by its answer');
    assert.equal(turns.get('t', 'u', 'c5'), undefined);
  });

  it('compares turns by role and text', () => {
    assert.ok(sameTurns([q('1'), a('2')], [q('1'), a('2')]));
    assert.ok(!sameTurns([q('1'), a('2')], [q('1'), q('2')]));
    assert.ok(!sameTurns([q('1')], [q('1'), a('2')]));
  });
});

describe('heldEvents', () => {
  it('holds events until released, then hands them over in order and passes later ones straight on', () => {
    const seen: string[] = [];
    const held = heldEvents();
    held.events.ready!();
    held.events.token('a');
    held.events.token('b');
    assert.equal(seen.length, 0, 'held');
    const to = { ready: () => void seen.push('ready'), sources: () => void seen.push('sources'), token: (t: string) => void seen.push(t) };
    held.release(to);
    held.events.token('c');
    assert.deepEqual(seen, ['ready', 'a', 'b', 'c']);
  });
});
