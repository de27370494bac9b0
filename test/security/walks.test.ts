import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ROLES, type Role } from '../../lib/auth/jwt.ts';
import { isAction, PERMISSIONS, type Action } from '../../lib/auth/permissions.ts';
import { accessRoutes } from '../../services/api/routes/access.ts';
import { healthEndpoints } from '../../services/api/routes/health.ts';
import { apiRouteModules } from '../../services/api/routes/index.ts';
import type { Endpoint } from '../../services/api/routes/module.ts';
import { startEmbeddedNode, type EmbeddedNode } from '../support/embedded.ts';

/**
 * The maintenance service's actions, each with the action of the permission table it
 * checks (the gateway checked the same one before the call). Walked directly over the
 * broker, as a caller that slipped past the gateway would reach them.
 */
const MAINTENANCE_ACTIONS: Record<string, Action> = {
  'maintenance.backup.create': 'backups.manage',
  'maintenance.backup.list': 'backups.manage',
  'maintenance.backup.retention': 'backups.manage',
  'maintenance.sweep.run': 'sweeps.run',
  'maintenance.mode.set': 'maintenance.manage',
  'maintenance.models.list': 'models.read',
  'maintenance.models.status': 'models.read',
  'maintenance.models.coverage': 'models.read',
  'maintenance.models.register': 'models.manage',
  'maintenance.models.reindex': 'models.manage',
  'maintenance.models.reindexCancel': 'models.manage',
  'maintenance.models.compare': 'models.manage',
  'maintenance.models.switch': 'models.manage',
  'maintenance.models.rollback': 'models.manage',
  'maintenance.models.delete': 'models.manage',
};
/** Parameters that pass each action's schema, so the refusal under test is the permission's. */
const VALID_PARAMS: Record<string, Record<string, unknown>> = {
  'maintenance.mode.set': { enabled: false },
  'maintenance.models.coverage': { alias: 'a', version: 'v' },
  'maintenance.models.register': { manifest: {} },
  'maintenance.models.reindex': { alias: 'a', version: 'v' },
  'maintenance.models.reindexCancel': { alias: 'a', version: 'v' },
  'maintenance.models.compare': { alias: 'a', v1: 'x', v2: 'y', tenantId: 'walk' },
  'maintenance.models.switch': { alias: 'a', version: 'v' },
  'maintenance.models.rollback': { alias: 'a' },
  'maintenance.models.delete': { alias: 'a', version: 'v' },
};

describe('route table × role walk (every route, every role, against the one permission table)', () => {
  let node: EmbeddedNode;
  let endpoints: Endpoint[];
  before(async () => {
    node = await startEmbeddedNode();
    const runtime = node.node.runtime;
    endpoints = [...healthEndpoints(runtime, () => null as never, () => []), ...apiRouteModules(runtime), accessRoutes(runtime, () => null)].flatMap((e) => ('endpoints' in e ? e.endpoints : [e]));
  });
  after(() => node.stop());

  it('every authenticated route names an action of the table, and every action is used', () => {
    const used = new Set<string>(['deployment.read', ...Object.values(MAINTENANCE_ACTIONS)]);
    for (const e of endpoints) {
      if (e.public) continue;
      assert.ok(e.permission && isAction(e.permission), `${e.method} ${e.path} names no action of the table`);
      assert.equal('roles' in e, false, `${e.method} ${e.path} declares roles of its own`);
      used.add(e.permission);
    }
    assert.deepEqual(Object.keys(PERMISSIONS).filter((a) => !used.has(a)), [], 'actions no route or service action takes');
  });

  it('lets exactly the roles of the table through and answers everyone else 403 FORBIDDEN', async () => {
    const walked = endpoints.filter((e) => !e.public);
    let checks = 0;
    for (const role of ROLES) {
      const token = await node.token([role], `walker-${role}`, 'walk');
      for (const e of walked) {
        // Only the gateway's decision is walked: a made-up id and an empty body are refused later, by the handler.
        const path = e.path.replace(/:[A-Za-z]+/g, '00000000-0000-4000-8000-000000000000');
        const abort = new AbortController();
        const res = await fetch(`${node.base}${path}`, {
          method: e.method,
          headers: { Authorization: `Bearer ${token}`, ...(e.method === 'GET' || e.method === 'DELETE' ? {} : { 'Content-Type': 'application/json' }) },
          body: e.method === 'GET' || e.method === 'DELETE' ? undefined : '{}',
          signal: abort.signal,
        });
        const streaming = (res.headers.get('content-type') ?? '').startsWith('text/event-stream');
        const text = streaming ? '' : await res.text();
        abort.abort();
        const where = `${role} ${e.method} ${e.path} (${e.permission}) → ${res.status} ${text.slice(0, 160)}`;
        if ((PERMISSIONS[e.permission!].roles as readonly Role[]).includes(role)) assert.ok(res.status !== 401 && res.status !== 403 && res.status < 500, where);
        else {
          assert.equal(res.status, 403, where);
          assert.equal(JSON.parse(text).error.code, 'FORBIDDEN', where);
        }
        checks++;
      }
    }
    assert.equal(checks, walked.length * ROLES.length);
    console.log(`# route × role walk: ${walked.length} routes × ${ROLES.length} roles = ${checks} checks`);
  });

  it("refuses the maintenance service's actions to every role the table does not give them", async () => {
    let checks = 0;
    for (const role of ROLES) {
      for (const [action, permission] of Object.entries(MAINTENANCE_ACTIONS)) {
        if ((PERMISSIONS[permission].roles as readonly Role[]).includes(role)) continue;
        await assert.rejects(
          () => node.node.broker.call(action, VALID_PARAMS[action] ?? {}, { meta: { auth: { tenantId: 'walk', userId: `walker-${role}`, roles: [role] } } }),
          (err: { code?: number; type?: string }) => err.code === 403 && err.type === 'ADMIN_ONLY',
          `${role} ${action}`,
        );
        checks++;
      }
    }
    assert.ok(checks > 0);
    console.log(`# maintenance action × role walk: ${checks} refusals`);
  });
});
