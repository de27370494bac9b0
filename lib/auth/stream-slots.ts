import { randomUUID } from 'node:crypto';
import { appError } from '../errors.ts';
import type { KeyValueStore } from '../ports/key-value.ts';
import type { Config } from '../config/env.ts';
import { degradable } from '../adapters/kv/degradable.ts';

/** A slot is renewed while its stream lives; a crashed replica's slots free themselves after this. */
const SLOT_TTL_MS = 60_000;

/**
 * Kinds of long-lived responses, each with its own per-user and per-tenant cap: `answer` (chat answers
 * and /v1/chat/completions, streamed or not: same cost) and `events` (job-event and
 * model-event SSE). Routes declare theirs (`streamCap`); the gateway takes the slot.
 */
export type StreamKind = 'answer' | 'events';

/** Caps per kind: per user (required) and per tenant (0 = none). */
export interface StreamCaps {
  perUser: Record<StreamKind, number>;
  perTenant: Record<StreamKind, number>;
}

/**
 * Concurrent streams one user, and all users of one tenant, may hold across every api
 * replica. The user's slots are keys in the KV store (Redis in the mesh) taken with
 * set-if-absent and released with compare-and-delete; the tenant's are counted leases
 * (one atomic script: drop expired leases, take one under the cap). Both are renewed
 * while the stream lives and expire SLOT_TTL_MS after a crashed replica stopped renewing
 * them, so no slot leaks. The tenant lease and the user's first slot are asked for together;
 * whichever a refused take got is given back. Past a cap: 429 TOO_MANY_STREAMS.
 */
export class StreamSlots {
  constructor(
    private readonly kv: () => Promise<KeyValueStore>,
    private readonly caps: StreamCaps,
    /** How long a slot outlives its last renewal (renewed every third of it). */
    private readonly ttlMs = SLOT_TTL_MS,
  ) {}

  /**
   * Takes a slot; the returned function releases it (idempotent). The tenant lease and
   * the user's first slot are asked for at once, so a take costs one round trip to the
   * store when both are free (the common case); a slot or lease taken for a take that is
   * refused is given back before the refusal.
   */
  async take(kind: StreamKind, tenantId: string, userId: string): Promise<() => Promise<void>> {
    const kv = await this.kv();
    const holder = randomUUID();
    const what = kind === 'answer' ? 'answers' : 'event streams';
    const tenantCap = this.caps.perTenant[kind];
    const tenantKey = streamLeaseKey(kind, tenantId);
    const cap = this.caps.perUser[kind];
    const slotKey = (i: number) => streamSlotKey(kind, tenantId, userId, i);
    const releaseLease = () => (tenantCap > 0 ? kv.releaseLease(tenantKey, holder).catch(() => undefined) : Promise.resolve());

    const [lease, first] = await Promise.allSettled([tenantCap > 0 ? kv.takeLease(tenantKey, holder, tenantCap, this.ttlMs) : Promise.resolve(true), kv.setIfAbsent(slotKey(0), holder, this.ttlMs)]);
    if (lease.status === 'rejected' || !lease.value) {
      if (first.status === 'fulfilled' && first.value) await kv.deleteIfEquals(slotKey(0), holder).catch(() => undefined);
      if (lease.status === 'rejected') throw lease.reason;
      throw appError('TOO_MANY_STREAMS', `At most ${tenantCap} ${what} may stream at once per tenant`, { retryAfterSeconds: 2 });
    }
    let slot = -1;
    try {
      if (first.status === 'rejected') throw first.reason;
      if (first.value) slot = 0;
      for (let i = 1; slot < 0 && i < cap; i++) if (await kv.setIfAbsent(slotKey(i), holder, this.ttlMs)) slot = i;
    } catch (err) {
      await releaseLease();
      throw err;
    }
    if (slot < 0) {
      await releaseLease();
      throw appError('TOO_MANY_STREAMS', `At most ${cap} ${what} may stream at once per user`, { retryAfterSeconds: 2 });
    }
    const key = slotKey(slot);
    const renew = setInterval(() => {
      void kv.set(key, holder, this.ttlMs).catch(() => undefined);
      if (tenantCap > 0) void kv.renewLease(tenantKey, holder, this.ttlMs).catch(() => undefined);
    }, this.ttlMs / 3);
    renew.unref();
    let released = false;
    return async () => {
      if (released) return;
      released = true;
      clearInterval(renew);
      await Promise.all([kv.deleteIfEquals(key, holder).catch(() => undefined), releaseLease()]);
    };
  }
}

/** The KV key of one slot. */
export const streamSlotKey = (kind: StreamKind, tenantId: string, userId: string, slot: number): string => `stream-slot:${kind}:${tenantId}:${userId}:${slot}`;

/** The KV key of a tenant's counted stream leases. */
export const streamLeaseKey = (kind: StreamKind, tenantId: string): string => `stream-lease:${kind}:${tenantId}`;

/** The caps of the config: CHAT_STREAMS_PER_USER/_PER_TENANT for answers (chat and /v1), EVENT_STREAMS_PER_USER/_PER_TENANT for job and model events. */
export function streamSlots(runtime: { config: Config; stores: { kv(): Promise<KeyValueStore> } }): StreamSlots {
  const { chat, streams } = runtime.config;
  // Without Redis the caps are counted in this process only (logged and counted as degraded).
  return new StreamSlots(async () => degradable(await runtime.stores.kv(), 'stream-cap'), {
    perUser: { answer: chat.streamsPerUser, events: streams.eventsPerUser },
    perTenant: { answer: chat.streamsPerTenant, events: streams.eventsPerTenant },
  });
}
