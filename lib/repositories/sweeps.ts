import type { Knex } from 'knex';
import { isUuid } from '../ids.ts';

/**
 * What the maintenance sweepers read across tenants. They act for the deployment,
 * not for one tenant, so these reads take no tenant scope; every write they do goes
 * through a scoped port or repository.
 */
export class SweepsRepository {
  constructor(private readonly knex: Knex) {}

  async tenantIds(): Promise<string[]> {
    return ((await this.knex('tenants').select('id').orderBy('id')) as Array<{ id: string }>).map((r) => r.id);
  }

  /** The keys among `keys` that some document row stores its upload under. */
  async referencedObjectKeys(keys: string[]): Promise<Set<string>> {
    if (keys.length === 0) return new Set();
    const rows = (await this.knex('documents').whereIn('object_key', keys).select('object_key')) as Array<{ object_key: string }>;
    return new Set(rows.map((r) => r.object_key));
  }

  /** Current version of each document of `ids` that exists in the tenant. */
  async documentVersions(tenantId: string, ids: string[]): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    const uuids = ids.filter(isUuid);
    for (let i = 0; i < uuids.length; i += 1000) {
      const rows = (await this.knex('documents')
        .where('tenant_id', tenantId)
        .whereIn('id', uuids.slice(i, i + 1000))
        .select('id', 'version')) as Array<{ id: string; version: number }>;
      for (const r of rows) out.set(r.id, Number(r.version));
    }
    return out;
  }

  /** Documents with an upload object, a page at a time (for rows whose object is gone). */
  async documentsWithObjects(afterId: string | null, limit: number): Promise<Array<{ id: string; tenantId: string; objectKey: string }>> {
    const query = this.knex('documents').whereNotNull('object_key').orderBy('id').limit(limit).select('id', 'tenant_id', 'object_key');
    if (afterId) query.where('id', '>', afterId);
    return ((await query) as Array<{ id: string; tenant_id: string; object_key: string }>).map((r) => ({ id: r.id, tenantId: r.tenant_id, objectKey: r.object_key }));
  }

  /**
   * Deletes chats (and their messages) untouched for longer than their tenant's
   * retention, or `defaultDays` where the tenant sets none; 0 days = keep forever.
   */
  async deleteExpiredChats(defaultDays: number, now = new Date()): Promise<number> {
    const rows = (await this.knex('chats as c')
      .join('tenants as t', 't.id', 'c.tenant_id')
      .whereRaw('coalesce(t.chat_retention_days, ?) > 0', [defaultDays])
      .whereRaw(`c.updated_at < ?::timestamptz - make_interval(days => coalesce(t.chat_retention_days, ?))`, [now.toISOString(), defaultDays])
      .select('c.tenant_id', 'c.id')) as Array<{ tenant_id: string; id: string }>;
    let deleted = 0;
    for (const row of rows) {
      await this.knex.transaction(async (trx) => {
        await trx('messages').where({ tenant_id: row.tenant_id, chat_id: row.id }).delete();
        deleted += Number(await trx('chats').where({ tenant_id: row.tenant_id, id: row.id }).delete());
      });
    }
    return deleted;
  }

  async setChatRetention(tenantId: string, days: number | null): Promise<void> {
    await this.knex('tenants').where({ id: tenantId }).update({ chat_retention_days: days });
  }
}
