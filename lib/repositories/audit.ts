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

  /** A tenant's entries; `null` lists the deployment-wide ones. */
  async list(scope: TenantScope | null, limit = 100): Promise<AuditRow[]> {
    const query = this.knex('audit_log').orderBy('id', 'desc').limit(Math.min(Math.max(limit, 1), 1000));
    if (scope) query.where({ tenant_id: scope.tenantId });
    else query.whereNull('tenant_id');
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
