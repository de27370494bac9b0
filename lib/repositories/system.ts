import type { Knex } from 'knex';

/** Maintenance (read-only) mode: writes get 503 MAINTENANCE while it is on; reads and search go on. */
export interface MaintenanceMode {
  enabled: boolean;
  reason: string | null;
  since: string | null;
  by: string | null;
}

export const MAINTENANCE_OFF: MaintenanceMode = { enabled: false, reason: null, since: null, by: null };

/** Deployment-wide settings, not tenant-owned: nothing here takes a tenant scope. */
export class SystemRepository {
  constructor(private readonly knex: Knex) {}

  async maintenance(): Promise<MaintenanceMode> {
    const row = await this.knex('system_settings').where({ key: 'maintenance' }).first('value');
    if (!row) return MAINTENANCE_OFF;
    const value = (typeof row.value === 'string' ? JSON.parse(row.value) : row.value) as MaintenanceMode;
    return { ...MAINTENANCE_OFF, ...value };
  }

  async setMaintenance(mode: MaintenanceMode, trx: Knex = this.knex): Promise<void> {
    await trx('system_settings')
      .insert({ key: 'maintenance', value: JSON.stringify(mode), updated_by: mode.by, updated_at: trx.fn.now() })
      .onConflict('key')
      .merge();
  }
}
