import type { Knex } from 'knex';
import type { Role } from '../auth/jwt.ts';
import type { TenantScope } from '../ports/tenant-scope.ts';

export interface ApiKeyRow {
  id: string;
  tenantId: string;
  userId: string;
  name: string;
  roles: Role[];
  createdBy: string;
  createdAt: Date;
  lastUsedAt: Date | null;
  revokedAt: Date | null;
}

export interface ApiKeyCredential extends ApiKeyRow {
  secretHash: string;
}

/** API keys of a tenant's users. Lookups by id for authentication are the one unscoped read: the key names its tenant. */
export class ApiKeysRepository {
  constructor(private readonly knex: Knex) {}

  async create(scope: TenantScope, key: { id: string; userId: string; name: string; roles: Role[]; secretHash: string; createdBy: string }): Promise<ApiKeyRow> {
    const [row] = await this.knex('api_keys')
      .insert({ id: key.id, tenant_id: scope.tenantId, user_id: key.userId, name: key.name, roles: key.roles, secret_hash: key.secretHash, created_by: key.createdBy })
      .returning('*');
    return toRow(row);
  }

  async list(scope: TenantScope, filter: { userId?: string } = {}): Promise<ApiKeyRow[]> {
    const query = this.knex('api_keys').where({ tenant_id: scope.tenantId }).orderBy('created_at', 'desc').limit(1000);
    if (filter.userId) query.andWhere({ user_id: filter.userId });
    return (await query).map(toRow);
  }

  async get(scope: TenantScope, id: string): Promise<ApiKeyRow | null> {
    const row = await this.knex('api_keys').where({ tenant_id: scope.tenantId, id }).first();
    return row ? toRow(row) : null;
  }

  /** Marks a key revoked; null when the tenant has no such key. Revoking twice keeps the first time. */
  async revoke(scope: TenantScope, id: string): Promise<ApiKeyRow | null> {
    const [row] = await this.knex('api_keys')
      .where({ tenant_id: scope.tenantId, id })
      .update({ revoked_at: this.knex.raw('coalesce(revoked_at, now())') })
      .returning('*');
    return row ? toRow(row) : null;
  }

  /** Sets the roles of every live key of a user (a role change of that user). */
  async setRolesOfUser(scope: TenantScope, userId: string, roles: Role[]): Promise<number> {
    return this.knex('api_keys').where({ tenant_id: scope.tenantId, user_id: userId }).whereNull('revoked_at').update({ roles });
  }

  /** The credential of a presented key, revoked or not (the caller decides). */
  async credential(id: string): Promise<ApiKeyCredential | null> {
    const row = await this.knex('api_keys').where({ id }).first();
    return row ? { ...toRow(row), secretHash: row.secret_hash as string } : null;
  }

  async touch(id: string, at: Date): Promise<void> {
    await this.knex('api_keys').where({ id }).update({ last_used_at: at });
  }
}

function toRow(row: Record<string, unknown>): ApiKeyRow {
  return {
    id: row.id as string,
    tenantId: row.tenant_id as string,
    userId: row.user_id as string,
    name: row.name as string,
    roles: row.roles as Role[],
    createdBy: row.created_by as string,
    createdAt: new Date(row.created_at as string),
    lastUsedAt: row.last_used_at ? new Date(row.last_used_at as string) : null,
    revokedAt: row.revoked_at ? new Date(row.revoked_at as string) : null,
  };
}
