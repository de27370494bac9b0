import type { ChatMessage } from '../../lib/llm/types.ts';
import type { AnswerEvents } from './answering.ts';

/** What the cache holds of one chat: its last turns, oldest first. Compared by identity (see ChatTurns.advance). */
export interface KnownTurns {
  readonly turns: readonly ChatMessage[];
}

interface Entry extends KnownTurns {
  key: string;
  chars: number;
}

/** Text the cache may hold across all chats (UTF-16 code units): about 8 MB. */
const MAX_CHARS = 4_000_000;
/** Chats it may hold. */
const MAX_CHATS = 20_000;

/**
 * Each chat's last turns as this api process last read or wrote them, so an answer can
 * start (the llm call) without waiting for PostgreSQL: the route still reads the chat,
 * and the read decides (ownership, 404, the turns the answer must use).
 *
 * An entry is keyed by tenant, user and chat, and made only from a read (or a create)
 * that found the chat owned by that user in that tenant: a hit proves the caller owned
 * the chat when it was last read. It may be stale (another replica, or a concurrent
 * answer on this one, wrote to the chat since): the route compares it with the read.
 * Least recently used chats go first past MAX_CHATS or MAX_CHARS.
 */
export class ChatTurns {
  private readonly entries = new Map<string, Entry>();
  private chars = 0;

  constructor(
    /** Turns kept per chat: what the prompt takes (the route's HISTORY). */
    private readonly limit: number,
    private readonly maxChars = MAX_CHARS,
    private readonly maxChats = MAX_CHATS,
  ) {}

  get(tenantId: string, userId: string, chatId: string): KnownTurns | undefined {
    const key = keyOf(tenantId, userId, chatId);
    const entry = this.entries.get(key);
    if (entry) {
      // Most recently used last: Map keeps insertion order.
      this.entries.delete(key);
      this.entries.set(key, entry);
    }
    return entry;
  }

  /** The turns a read found (the chat owned by this user): they replace whatever was known. */
  set(tenantId: string, userId: string, chatId: string, turns: readonly ChatMessage[]): KnownTurns {
    return this.put(keyOf(tenantId, userId, chatId), turns.slice(-this.limit).map((t) => ({ role: t.role, content: t.content })));
  }

  /**
   * An answer stored `added` (its question and answer) after the turns it started from:
   * the chat's turns are now those plus `added`, unless the entry was replaced meanwhile
   * (another answer of the same chat on this process read it): then nobody here knows the
   * order the rows went in, and the chat is forgotten until its next read.
   */
  advance(from: KnownTurns, added: readonly ChatMessage[]): void {
    const entry = from as Entry;
    if (this.entries.get(entry.key) !== entry) return this.drop(entry.key);
    this.put(entry.key, [...entry.turns, ...added].slice(-this.limit));
  }

  /** Forgets the chat `from` was read from: an answer failed or was left, and what it stored is not known here. */
  forgetChat(from: KnownTurns | null | undefined): void {
    if (from) this.drop((from as Entry).key);
  }

  forget(tenantId: string, userId: string, chatId: string): void {
    this.drop(keyOf(tenantId, userId, chatId));
  }

  get size(): number {
    return this.entries.size;
  }

  private put(key: string, turns: ChatMessage[]): KnownTurns {
    this.drop(key);
    const entry: Entry = { key, turns, chars: turns.reduce((n, t) => n + t.content.length, 0) };
    if (entry.chars > this.maxChars) return entry; // too big to keep: still usable by the caller
    this.entries.set(key, entry);
    this.chars += entry.chars;
    for (const [oldest, old] of this.entries) {
      if (this.chars <= this.maxChars && this.entries.size <= this.maxChats) break;
      this.entries.delete(oldest);
      this.chars -= old.chars;
    }
    return entry;
  }

  private drop(key: string): void {
    const entry = this.entries.get(key);
    if (!entry) return;
    this.entries.delete(key);
    this.chars -= entry.chars;
  }
}

const keyOf = (tenantId: string, userId: string, chatId: string) => `${tenantId}\u0000${userId}\u0000${chatId}`;

/** Whether two lists of turns give the model the same prompt. */
export function sameTurns(a: readonly ChatMessage[], b: readonly ChatMessage[]): boolean {
  return a.length === b.length && a.every((t, i) => t.role === b[i]!.role && t.content === b[i]!.content);
}

/**
 * Answer events held until the answer is known to be the caller's (see the chat route):
 * `release` hands what was held to `to`, in order, and later events go straight to it.
 * Held events that are never released are dropped with the answer.
 */
export function heldEvents(): { events: AnswerEvents; release(to: AnswerEvents): void } {
  let target: AnswerEvents | null = null;
  const queue: Array<(to: AnswerEvents) => void> = [];
  const on = (event: (to: AnswerEvents) => void) => (target ? event(target) : queue.push(event));
  return {
    events: {
      ready: () => on((to) => to.ready?.()),
      sources: (sources, degraded) => on((to) => to.sources(sources, degraded)),
      token: (text) => on((to) => to.token(text)),
    },
    release(to) {
      target = to;
      for (const event of queue.splice(0)) event(to);
    },
  };
}
