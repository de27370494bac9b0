import type { Knex } from 'knex';
import type { TenantScope } from '../ports/tenant-scope.ts';

export interface AuditEntry {
  actor: string;
  action: string;
  target?: string | null;
  details?: Record<string, unknown>;
  requestId?: string | null;
}

export interface AuditRow extends AuditEntry {
  id: number;
  tenantId: string | null;
  createdAt: Date;
}

export interface AuditFilter {
  actor?: string;
  action?: string;
  since?: Date;
  until?: Date;
  /** Entries older than this id: the next page. */
  beforeId?: number;
  limit?: number;
  withDeploymentWide?: boolean;
}

/** Every admin action leaves a row. `null` scope = a deployment-wide action (e.g. a model switch). */
export class AuditRepository {
  constructor(private readonly knex: Knex) {}

  async record(scope: TenantScope | null, entry: AuditEntry, trx: Knex = this.knex): Promise<void> {
    await trx('audit_log').insert({
      tenant_id: scope?.tenantId ?? null,
      actor: entry.actor,
      action: entry.action,
      target: entry.target ?? null,
      details: JSON.stringify(entry.details ?? {}),
      request_id: entry.requestId ?? null,
    });
  }

  /**
   * Entries newest first. `scope` = a tenant's entries, `null` = the deployment-wide
   * ones; `withDeploymentWide` adds those to a tenant's (what an admin reads).
   */
  async list(scope: TenantScope | null, filter: AuditFilter | number = {}): Promise<AuditRow[]> {
    const f: AuditFilter = typeof filter === 'number' ? { limit: filter } : filter;
    const query = this.knex('audit_log').orderBy('id', 'desc').limit(Math.min(Math.max(f.limit ?? 100, 1), 1000));
    query.where((q) => {
      if (scope) q.where({ tenant_id: scope.tenantId });
      else q.whereNull('tenant_id');
      if (scope && f.withDeploymentWide) q.orWhereNull('tenant_id');
    });
    if (f.actor) query.andWhere({ actor: f.actor });
    if (f.action) query.andWhere({ action: f.action });
    if (f.since) query.andWhere('created_at', '>=', f.since);
    if (f.until) query.andWhere('created_at', '<', f.until);
    if (f.beforeId) query.andWhere('id', '<', f.beforeId);
    const rows = await query;
    return rows.map((row: Record<string, unknown>) => ({
      id: Number(row.id),
      tenantId: row.tenant_id as string | null,
      actor: row.actor as string,
      action: row.action as string,
      target: row.target as string | null,
      details: (typeof row.details === 'string' ? JSON.parse(row.details) : row.details) as Record<string, unknown>,
      requestId: row.request_id as string | null,
      createdAt: new Date(row.created_at as string),
    }));
  }
}
