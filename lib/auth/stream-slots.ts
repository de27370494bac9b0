import { randomUUID } from 'node:crypto';
import { appError } from '../errors.ts';
import type { KeyValueStore } from '../ports/key-value.ts';
import type { Config } from '../config/env.ts';
import { degradable } from '../adapters/kv/degradable.ts';

/** A slot is renewed while its stream lives; a crashed replica's slots free themselves after this. */
const SLOT_TTL_MS = 60_000;

/**
 * Kinds of long-lived responses, each with its own per-user cap: `answer` (chat answers
 * and /v1/chat/completions, streamed or not: same cost) and `events` (job-event and
 * model-event SSE). Routes declare theirs (`streamCap`); the gateway takes the slot.
 */
export type StreamKind = 'answer' | 'events';

/**
 * Concurrent streams one user may hold across every api replica: slots are keys in the
 * KV store (Redis in the mesh) taken with set-if-absent, renewed while the stream
 * lives, released with compare-and-delete. Past the cap: 429 TOO_MANY_STREAMS.
 */
export class StreamSlots {
  constructor(
    private readonly kv: () => Promise<KeyValueStore>,
    private readonly caps: Record<StreamKind, number>,
  ) {}

  /** Takes a slot; the returned function releases it (idempotent). */
  async take(kind: StreamKind, tenantId: string, userId: string): Promise<() => Promise<void>> {
    const kv = await this.kv();
    const holder = randomUUID();
    const cap = this.caps[kind];
    for (let i = 0; i < cap; i++) {
      const key = streamSlotKey(kind, tenantId, userId, i);
      if (await kv.setIfAbsent(key, holder, SLOT_TTL_MS)) {
        const renew = setInterval(() => void kv.set(key, holder, SLOT_TTL_MS).catch(() => undefined), SLOT_TTL_MS / 3);
        renew.unref();
        let released = false;
        return async () => {
          if (released) return;
          released = true;
          clearInterval(renew);
          await kv.deleteIfEquals(key, holder).catch(() => undefined);
        };
      }
    }
    const what = kind === 'answer' ? 'answers' : 'event streams';
    throw appError('TOO_MANY_STREAMS', `At most ${cap} ${what} may stream at once per user`, { retryAfterSeconds: 2 });
  }
}

/** The KV key of one slot. */
export const streamSlotKey = (kind: StreamKind, tenantId: string, userId: string, slot: number): string => `stream-slot:${kind}:${tenantId}:${userId}:${slot}`;

/** The caps of the config: CHAT_STREAMS_PER_USER for answers (chat and /v1), EVENT_STREAMS_PER_USER for job and model events. */
export function streamSlots(runtime: { config: Config; stores: { kv(): Promise<KeyValueStore> } }): StreamSlots {
  // Without Redis the cap is counted in this process only (logged and counted as degraded).
  return new StreamSlots(async () => degradable(await runtime.stores.kv(), 'stream-cap'), { answer: runtime.config.chat.streamsPerUser, events: runtime.config.streams.eventsPerUser });
}
