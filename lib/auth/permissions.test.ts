import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MemoryKeyValueStore } from '../adapters/kv/memory.ts';
import type { KeyValueStore } from '../ports/key-value.ts';
import { ROLES, type Principal } from './jwt.ts';
import { can, grantableRoles, PERMISSIONS, requirePermission, type Action } from './permissions.ts';
import { RateLimiter, DEFAULT_RATE_LIMITS } from './rate-limit.ts';
import { StreamSlots } from './stream-slots.ts';

describe('permission table', () => {
  it('gives admin-only actions to admin alone and tenant powers to admin and tenant_admin', () => {
    const adminOnly: Action[] = ['models.manage', 'maintenance.manage', 'backups.manage', 'deadLetters.read', 'deadLetters.replay'];
    for (const action of adminOnly) assert.deepEqual([...PERMISSIONS[action].roles], ['admin'], action);
    for (const action of ['users.manage', 'apiKeys.manage', 'audit.read', 'models.read', 'maintenance.read'] as Action[]) {
      assert.deepEqual([...PERMISSIONS[action].roles].sort(), ['admin', 'tenant_admin'], action);
    }
    assert.equal(can({ roles: ['viewer'] }, 'documents.upload'), false);
    assert.equal(can({ roles: ['viewer', 'editor'] }, 'documents.upload'), true);
    assert.equal(can({ roles: [] }, 'search'), false);
    assert.equal(can(null, 'search'), false);
  });

  it('names only known roles, and every role can at least read', () => {
    for (const [action, permission] of Object.entries(PERMISSIONS)) {
      assert.ok(permission.roles.length > 0, action);
      for (const role of permission.roles) assert.ok(ROLES.includes(role), `${action}: ${role}`);
    }
    for (const role of ROLES) assert.ok(can({ roles: [role] }, 'documents.read'));
  });

  it('throws 401 without a caller and 403 for a role that may not', () => {
    assert.throws(() => requirePermission(undefined, 'search'), { code: 401 });
    assert.throws(() => requirePermission({ tenantId: 't', userId: 'u', roles: ['tenant_admin'] }, 'models.manage'), { code: 403, type: 'FORBIDDEN' });
  });

  it('lets a tenant_admin grant tenant roles but never admin', () => {
    assert.deepEqual(grantableRoles({ roles: ['tenant_admin'] }), ['viewer', 'editor', 'tenant_admin']);
    assert.ok(grantableRoles({ roles: ['admin'] }).includes('admin'));
    assert.deepEqual(grantableRoles({ roles: ['editor'] }), []);
  });
});

describe('RateLimiter', () => {
  it('limits a user per class, and a tenant across its users, with 429 RATE_LIMITED and Retry-After', async () => {
    const kv = new MemoryKeyValueStore();
    try {
      const limiter = new RateLimiter(kv, {
        windowMs: 60_000,
        perUser: { ...DEFAULT_RATE_LIMITS.perUser, search: 2 },
        perTenant: { ...DEFAULT_RATE_LIMITS.perTenant, search: 3 },
      });
      const a = { tenantId: 't1', userId: 'a' };
      await limiter.hit(a, 'search');
      await limiter.hit(a, 'search');
      await assert.rejects(() => limiter.hit(a, 'search'), (err: { code: number; type: string; data: { retryAfterSeconds: number } }) => {
        assert.equal(err.code, 429);
        assert.equal(err.type, 'RATE_LIMITED');
        assert.ok(err.data.retryAfterSeconds >= 1 && err.data.retryAfterSeconds <= 60);
        return true;
      });
      await limiter.hit(a, 'chat');
      await limiter.hit({ tenantId: 't1', userId: 'b' }, 'search');
      await assert.rejects(() => limiter.hit({ tenantId: 't1', userId: 'c' }, 'search'), { code: 429 }, 'the tenant is at 3');
      await limiter.hit({ tenantId: 't2', userId: 'a' }, 'search');
      // The gateway's check(): the memory store answers at once, no promise; a refusal throws there and then.
      const viewer = Object.freeze({ tenantId: 't3', userId: 'v', roles: Object.freeze(['viewer']) }) as Principal;
      assert.equal(limiter.check(viewer, 'search'), undefined);
      limiter.check(viewer, 'search');
      assert.throws(() => limiter.check(viewer, 'search'), { code: 429, type: 'RATE_LIMITED' });
      assert.throws(() => limiter.check(viewer, 'documents.upload'), { code: 403, type: 'FORBIDDEN' });
      assert.throws(() => limiter.check(undefined, 'search'), { code: 401 });
      // A store that needs a round trip (Redis has no hitWindowsNow): a promise, rejected past the limit.
      const remote = { hitWindows: (keys: string[], limits: number[], windowMs: number) => kv.hitWindows(keys, limits, windowMs) } as unknown as KeyValueStore;
      const overRemote = new RateLimiter(remote, { windowMs: 60_000, perUser: { ...DEFAULT_RATE_LIMITS.perUser, search: 1 }, perTenant: DEFAULT_RATE_LIMITS.perTenant });
      const first = overRemote.check({ ...viewer, userId: 'w' }, 'search');
      assert.ok(first instanceof Promise);
      await first;
      await assert.rejects(overRemote.check({ ...viewer, userId: 'w' }, 'search')!, { code: 429, type: 'RATE_LIMITED' });
    } finally {
      await kv.close();
    }
  });
});

describe('StreamSlots', () => {
  it('caps concurrent streams per user and kind, and frees a slot on release', async () => {
    const kv = new MemoryKeyValueStore();
    try {
      const slots = new StreamSlots(async () => kv, { perUser: { answer: 2, events: 1 }, perTenant: { answer: 0, events: 0 } });
      const first = await slots.take('answer', 't', 'u');
      await slots.take('answer', 't', 'u');
      await assert.rejects(() => slots.take('answer', 't', 'u'), { code: 429, type: 'TOO_MANY_STREAMS' });
      const events = await slots.take('events', 't', 'u');
      await assert.rejects(() => slots.take('events', 't', 'u'), { code: 429 });
      await slots.take('answer', 't', 'other');
      await first();
      await first();
      await slots.take('answer', 't', 'u');
      await events();
      await slots.take('events', 't', 'u');
    } finally {
      await kv.close();
    }
  });
});
