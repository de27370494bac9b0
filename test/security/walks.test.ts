import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ROLES, type Role } from '../../lib/auth/jwt.ts';
import { isAction, PERMISSIONS } from '../../lib/auth/permissions.ts';
import { accessRoutes } from '../../services/api/routes/access.ts';
import { apiRouteModules } from '../../services/api/routes/index.ts';
import type { Endpoint } from '../../services/api/routes/module.ts';
import { startEmbeddedNode, type EmbeddedNode } from '../support/embedded.ts';

/** Who may call a route: the permission table when the route names a permission, else its declared roles (any token when none). */
const allowedRoles = (e: Endpoint): readonly Role[] => (e.permission && isAction(e.permission) ? PERMISSIONS[e.permission].roles : e.roles?.length ? e.roles : ROLES);

describe('route table × role walk (every authenticated route, every role)', () => {
  let node: EmbeddedNode;
  let endpoints: Endpoint[];
  before(async () => {
    node = await startEmbeddedNode();
    endpoints = [...apiRouteModules(node.node.runtime), accessRoutes(node.node.runtime, () => null)].flatMap((m) => m.endpoints).filter((e) => !e.public);
  });
  after(() => node.stop());

  it('lets exactly the allowed roles through and answers everyone else 403 FORBIDDEN', async () => {
    let checks = 0;
    for (const role of ROLES) {
      const token = await node.token([role], `walker-${role}`, 'walk');
      for (const e of endpoints) {
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
        const where = `${role} ${e.method} ${e.path} → ${res.status} ${text.slice(0, 160)}`;
        if (allowedRoles(e).includes(role)) assert.ok(res.status !== 401 && res.status !== 403 && res.status < 500, where);
        else {
          assert.equal(res.status, 403, where);
          assert.equal(JSON.parse(text).error.code, 'FORBIDDEN', where);
        }
        checks++;
      }
    }
    assert.equal(checks, endpoints.length * ROLES.length);
    console.log(`# route × role walk: ${endpoints.length} routes × ${ROLES.length} roles = ${checks} checks`);
  });
});
