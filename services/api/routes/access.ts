import { AUDIT_ACTION_PATTERN, audit } from '../../../lib/auth/audit.ts';
import { mintApiKey } from '../../../lib/auth/api-keys.ts';
import { ROLES, USER_ID_PATTERN, type Role } from '../../../lib/auth/jwt.ts';
import { can, grantableRoles } from '../../../lib/auth/permissions.ts';
import { appError } from '../../../lib/errors.ts';
import { tenantScope } from '../../../lib/ports/tenant-scope.ts';
import { ApiKeysRepository, type ApiKeyRow } from '../../../lib/repositories/api-keys.ts';
import { AuditRepository, type AuditRow } from '../../../lib/repositories/audit.ts';
import { TenantsRepository } from '../../../lib/repositories/tenants.ts';
import type { RagmeshContext, Runtime } from '../../../lib/runtime/service-kit.ts';
import { endpoint, type ApiRouteModule } from './module.ts';
import type { AccessTokens } from '../../../lib/auth/tokens.ts';
import { CREDENTIALS_CHANGED_EVENT, type CredentialChange } from '../../../lib/auth/credentials.ts';

const KEY_ID = /^[0-9a-f]{18}$/;
const rolesParam = { type: 'array', items: { type: 'enum', values: [...ROLES] }, min: 1, max: ROLES.length, unique: true } as const;
const userIdParam = { type: 'string', min: 1, max: 128, pattern: USER_ID_PATTERN } as const;

const keyView = (k: ApiKeyRow) => ({
  id: k.id,
  userId: k.userId,
  name: k.name,
  roles: k.roles,
  createdBy: k.createdBy,
  createdAt: k.createdAt.toISOString(),
  lastUsedAt: k.lastUsedAt?.toISOString() ?? null,
  revokedAt: k.revokedAt?.toISOString() ?? null,
});

const auditView = (r: AuditRow) => ({
  id: r.id,
  tenantId: r.tenantId,
  actor: r.actor,
  action: r.action,
  target: r.target,
  details: r.details,
  requestId: r.requestId,
  at: r.createdAt.toISOString(),
});

/**
 * Who may do what in a tenant: its users and their roles, per-user API keys (shown
 * once, stored hashed, revocable), and the audit log. tenant_admin acts on its own
 * tenant only (the tenant always comes from the caller's credential); admin also
 * reads deployment-wide audit entries.
 */
export function accessRoutes(runtime: Runtime, tokens: () => AccessTokens | null, forgetCredentials: (change: CredentialChange) => void = () => undefined): ApiRouteModule {
  const knex = async () => (await runtime.stores.db()).knex;

  /**
   * After a revocation or role change is committed: this replica's cache drops the keys
   * before the answer goes out, every other api replica when the broadcast reaches it
   * (API_KEY_CACHE_MS bounds one that misses it).
   */
  const credentialsChanged = async (ctx: RagmeshContext, change: CredentialChange) => {
    forgetCredentials(change);
    await ctx.broadcast(CREDENTIALS_CHANGED_EVENT, change);
  };

  /** Roles the caller hands out must be within what they may grant. */
  const checkGrant = (ctx: RagmeshContext, roles: Role[]) => {
    const grantable = grantableRoles(ctx.meta.auth!);
    const refused = roles.filter((r) => !grantable.includes(r));
    if (refused.length) throw appError('ROLE_NOT_GRANTABLE', `You may not grant ${refused.join(', ')}`);
  };

  const CREATE = async (ctx: RagmeshContext<{ name: string; userId?: string; roles?: Role[] }>) => {
          const auth = ctx.meta.auth!;
          const scope = tenantScope(auth.tenantId);
          const k = await knex();
          const userId = ctx.params.userId ?? auth.userId;
          const member = await new TenantsRepository(k).getMember(scope, userId);
          if (!member && userId !== auth.userId) throw appError('USER_NOT_FOUND', `No user ${userId} in this tenant`);
          // A key never holds more than its user does.
          const roles = ctx.params.roles ?? member?.roles ?? ['viewer'];
          if (member && roles.some((r) => !member.roles.includes(r))) throw appError('ROLE_NOT_GRANTABLE', `${userId} does not hold ${roles.filter((r) => !member.roles.includes(r)).join(', ')}`);
          checkGrant(ctx, roles);
          const minted = mintApiKey();
          const row = await k.transaction(async (trx) => {
            const created = await new ApiKeysRepository(trx).create(scope, { id: minted.id, userId, name: ctx.params.name, roles, secretHash: minted.secretHash, createdBy: auth.userId });
            await audit(k, auth, { action: 'api-key.create', target: minted.id, details: { userId, roles, name: ctx.params.name } }, trx);
            return created;
          });
          ctx.meta.$statusCode = 201;
          return { ...keyView(row), key: minted.token };
        };
  const LIST = async (ctx: RagmeshContext<{ userId?: string }>) => {
          const rows = await new ApiKeysRepository(await knex()).list(tenantScope(ctx.meta.auth!.tenantId), { userId: ctx.params.userId });
          return { items: rows.map(keyView) };
        };
  const REVOKE = async (ctx: RagmeshContext<{ id: string }>) => {
          const auth = ctx.meta.auth!;
          if (!KEY_ID.test(ctx.params.id)) throw appError('API_KEY_NOT_FOUND', 'No such API key');
          const k = await knex();
          const row = await k.transaction(async (trx) => {
            const revoked = await new ApiKeysRepository(trx).revoke(tenantScope(auth.tenantId), ctx.params.id);
            if (revoked) await audit(k, auth, { action: 'api-key.revoke', target: revoked.id, details: { userId: revoked.userId } }, trx);
            return revoked;
          });
          if (!row) throw appError('API_KEY_NOT_FOUND', 'No such API key');
          await credentialsChanged(ctx, { tenantId: auth.tenantId, keyId: row.id });
          return keyView(row);
        };
  const USERS = async (ctx: RagmeshContext) => {
          const members = await new TenantsRepository(await knex()).listMembers(tenantScope(ctx.meta.auth!.tenantId));
          return { items: members.map((m) => ({ userId: m.userId, roles: m.roles, memberSince: m.memberSince.toISOString() })) };
        };
  const SETROLES = async (ctx: RagmeshContext<{ userId: string; roles: Role[] }>) => {
          const auth = ctx.meta.auth!;
          const scope = tenantScope(auth.tenantId);
          const k = await knex();
          const tenants = new TenantsRepository(k);
          const before = await tenants.getMember(scope, ctx.params.userId);
          if (!before) throw appError('USER_NOT_FOUND', `No user ${ctx.params.userId} in this tenant`);
          // Taking admin away is granting in reverse: only an admin may.
          checkGrant(ctx, [...ctx.params.roles, ...before.roles.filter((r) => !ctx.params.roles.includes(r))]);
          const after = await k.transaction(async (trx) => {
            const updated = await tenants.setRoles(scope, ctx.params.userId, ctx.params.roles, trx);
            await new ApiKeysRepository(trx).setRolesOfUser(scope, ctx.params.userId, ctx.params.roles);
            await audit(k, auth, { action: 'user.roles', target: ctx.params.userId, details: { from: before.roles, to: ctx.params.roles } }, trx);
            return updated!;
          });
          await credentialsChanged(ctx, { tenantId: auth.tenantId, userId: ctx.params.userId });
          return { userId: after.userId, roles: after.roles, memberSince: after.memberSince.toISOString() };
        };
  const AUDIT = async (ctx: RagmeshContext<{ actor?: string; action?: string; since?: Date; until?: Date; before?: number; limit?: number }>) => {
          const auth = ctx.meta.auth!;
          const { since, until } = ctx.params;
          if (since && until && since >= until) throw appError('INVALID_RANGE', '`since` must be before `until`');
          const limit = ctx.params.limit ?? 100;
          const rows = await new AuditRepository(await knex()).list(tenantScope(auth.tenantId), {
            actor: ctx.params.actor,
            action: ctx.params.action,
            since,
            until,
            beforeId: ctx.params.before,
            limit,
            withDeploymentWide: can(auth, 'deployment.read'),
          });
          return { items: rows.map(auditView), next: rows.length === limit ? rows[rows.length - 1]!.id : null };
        };
  const OBJ = { type: 'object' } as const;
  return {
    endpoints: [
      endpoint({
        method: 'GET',
        path: '/.well-known/jwks.json',
        summary: 'Public keys that verify access tokens (active, next, retiring)',
        public: true,
        response: { schema: OBJ },
        action: 'jwks',
        handler(ctx: RagmeshContext) {
          ctx.meta.$responseHeaders = { 'Cache-Control': 'public, max-age=300' };
          return tokens()?.jwks() ?? { keys: [] };
        },
      }),
      endpoint<{ name: string; userId?: string; roles?: Role[] }>({
        method: 'POST',
        path: '/api/v1/api-keys',
        summary: 'Create an API key for a user of the tenant; the key is in this answer only',
        permission: 'apiKeys.manage',
        params: { name: { type: 'string', min: 1, max: 100, trim: true }, userId: { ...userIdParam, optional: true }, roles: { ...rolesParam, optional: true } },
        response: { status: 201, schema: OBJ },
        errors: ['USER_NOT_FOUND', 'ROLE_NOT_GRANTABLE'],
        action: 'apiKeys.create',
        handler: CREATE,
      }),
      endpoint<{ userId?: string }>({
        method: 'GET',
        path: '/api/v1/api-keys',
        summary: 'API keys of the tenant (never their secrets)',
        permission: 'apiKeys.manage',
        params: { userId: { ...userIdParam, optional: true } },
        response: { schema: OBJ },
        action: 'apiKeys.list',
        handler: LIST,
      }),
      endpoint<{ id: string }>({
        method: 'DELETE',
        path: '/api/v1/api-keys/:id',
        summary: 'Revoke an API key',
        permission: 'apiKeys.manage',
        params: { id: { type: 'string', max: 64 } },
        response: { schema: OBJ },
        errors: ['API_KEY_NOT_FOUND'],
        action: 'apiKeys.revoke',
        handler: REVOKE,
      }),
      endpoint({
        method: 'GET',
        path: '/api/v1/users',
        summary: 'Users of the tenant and their roles',
        permission: 'users.read',
        response: { schema: OBJ },
        action: 'users.list',
        handler: USERS,
      }),
      endpoint<{ userId: string; roles: Role[] }>({
        method: 'PUT',
        path: '/api/v1/users/:userId/roles',
        summary: 'Set the roles of a user of the tenant (their API keys follow)',
        permission: 'users.manage',
        params: { userId: userIdParam, roles: rolesParam },
        response: { schema: OBJ },
        errors: ['USER_NOT_FOUND', 'ROLE_NOT_GRANTABLE'],
        action: 'users.setRoles',
        handler: SETROLES,
      }),
      endpoint<AuditParams>({
        method: 'GET',
        path: '/api/v1/audit',
        summary: 'The audit log, newest first, filtered by actor, action and time',
        permission: 'audit.read',
        params: {
          actor: { ...userIdParam, optional: true },
          action: { type: 'string', max: 64, pattern: AUDIT_ACTION_PATTERN, optional: true },
          since: { type: 'date', convert: true, optional: true },
          until: { type: 'date', convert: true, optional: true },
          before: { type: 'number', convert: true, integer: true, positive: true, optional: true },
          limit: { type: 'number', convert: true, integer: true, min: 1, max: 1000, optional: true },
        },
        response: { schema: OBJ },
        errors: ['INVALID_RANGE'],
        action: 'audit.list',
        handler: AUDIT,
      }),
    ],
  };
}

interface AuditParams {
  actor?: string;
  action?: string;
  since?: Date;
  until?: Date;
  before?: number;
  limit?: number;
}
