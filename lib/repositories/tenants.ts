import type { Knex } from 'knex';
import type { Role } from '../auth/jwt.ts';
import type { TenantScope } from '../ports/tenant-scope.ts';

export interface Membership {
  tenantId: string;
  userId: string;
  roles: Role[];
  memberSince: Date;
}

/**
 * Tenants, users and memberships. Identities come from verified tokens, so the
 * first request of a new tenant or user records them; later requests refresh roles.
 */
export class TenantsRepository {
  constructor(private readonly knex: Knex) {}

  /** Records the tenant, the user and their roles in one transaction; returns the membership. */
  async recordMember(scope: TenantScope, userId: string, roles: Role[]): Promise<Membership> {
    return this.knex.transaction(async (trx) => {
      await trx('tenants').insert({ id: scope.tenantId, name: scope.tenantId }).onConflict('id').ignore();
      await trx('users').insert({ id: userId }).onConflict('id').ignore();
      const [row] = await trx('memberships')
        .insert({ tenant_id: scope.tenantId, user_id: userId, roles })
        .onConflict(['tenant_id', 'user_id'])
        .merge(['roles'])
        .returning(['tenant_id', 'user_id', 'roles', 'created_at']);
      return toMembership(row);
    });
  }

  async getMember(scope: TenantScope, userId: string): Promise<Membership | null> {
    const row = await this.knex('memberships').where({ tenant_id: scope.tenantId, user_id: userId }).first();
    return row ? toMembership(row) : null;
  }

  /** Replaces a member's roles; null when the user is no member of the tenant. */
  async setRoles(scope: TenantScope, userId: string, roles: Role[], trx: Knex = this.knex): Promise<Membership | null> {
    const [row] = await trx('memberships').where({ tenant_id: scope.tenantId, user_id: userId }).update({ roles }).returning(['tenant_id', 'user_id', 'roles', 'created_at']);
    return row ? toMembership(row) : null;
  }

  async listMembers(scope: TenantScope): Promise<Membership[]> {
    const rows = await this.knex('memberships').where({ tenant_id: scope.tenantId }).orderBy('user_id');
    return rows.map(toMembership);
  }
}

function toMembership(row: { tenant_id: string; user_id: string; roles: Role[]; created_at: Date }): Membership {
  return { tenantId: row.tenant_id, userId: row.user_id, roles: row.roles, memberSince: new Date(row.created_at) };
}
