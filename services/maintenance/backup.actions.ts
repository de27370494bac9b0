import type { ServiceSchema } from 'moleculer';
import { createBackup, deleteBackup, listBackups, type BackupSummary } from '../../lib/backup/backup.ts';
import { parseCron } from '../../lib/backup/cron.ts';
import { backupsToDelete } from '../../lib/backup/retention.ts';
import { backupSources } from '../../lib/backup/sources.ts';
import { currentRequest } from '../../lib/logging.ts';
import { requireAllowed } from './admin.ts';
import { AuditRepository } from '../../lib/repositories/audit.ts';
import type { RagmeshContext, Runtime } from '../../lib/runtime/service-kit.ts';

export interface BackupResult {
  id: string;
  createdAt: string;
  bytes: number;
  files: number;
  migration: string | null;
}

/**
 * Backups from the maintenance service: on demand (`backup.create`, behind
 * POST /api/v1/admin/backups) and on BACKUP_SCHEDULE, each followed by retention.
 * Only one backup runs per process at a time; with several maintenance replicas a
 * KV lock per scheduled minute lets exactly one of them take it.
 */
export function backupActions(runtime: Runtime): {
  actions: NonNullable<ServiceSchema['actions']>;
  started(): Promise<void>;
  stopped(): Promise<void>;
} {
  let running: Promise<BackupResult> | null = null;
  let timer: NodeJS.Timeout | null = null;
  let stopping = false;

  async function backupNow(actor: string, requestId: string | null): Promise<BackupResult> {
    // A second request while one runs waits for the same backup rather than starting another.
    running ??= (async () => {
      const trigger = actor === 'schedule' ? 'schedule' : 'request';
      const manifest = await createBackup(await backupSources(runtime.stores, runtime.logger)).catch((err: unknown) => {
        runtime.metrics?.backups.inc({ trigger, outcome: 'failed' });
        throw err;
      });
      runtime.metrics?.backups.inc({ trigger, outcome: 'ok' });
      const db = await runtime.stores.db();
      await new AuditRepository(db.knex).record(null, {
        actor,
        action: 'backup.create',
        target: manifest.id,
        details: { bytes: manifest.bytes, files: manifest.files.length },
        requestId,
      });
      return { id: manifest.id, createdAt: manifest.createdAt, bytes: manifest.bytes, files: manifest.files.length, migration: manifest.migration.latest };
    })().finally(() => {
      running = null;
    });
    return running;
  }

  /** Keeps the newest of each of the last N days and M weeks; deletes the rest. */
  async function applyRetention(): Promise<string[]> {
    const target = await runtime.stores.backups();
    const backups = await listBackups(target);
    const { keepDaily, keepWeekly } = runtime.config.backup;
    const doomed = backupsToDelete(backups.map((b) => ({ id: b.id, createdAt: new Date(b.createdAt) })), keepDaily, keepWeekly);
    for (const id of doomed) await deleteBackup(target, id);
    return doomed;
  }

  function scheduleNext(): void {
    const { schedule } = runtime.config.backup;
    if (!schedule || stopping) return;
    const at = parseCron(schedule).next(new Date());
    // setTimeout holds at most ~24.8 days; a later run re-arms on the way.
    const wait = Math.min(at.getTime() - Date.now(), 2 ** 31 - 1);
    timer = setTimeout(() => void fire(at), Math.max(wait, 0));
    timer.unref();
  }

  async function fire(at: Date): Promise<void> {
    if (Date.now() < at.getTime()) return scheduleNext();
    try {
      const kv = await runtime.stores.kv();
      if (await kv.setIfAbsent(`backup:scheduled:${at.toISOString()}`, String(process.pid), 24 * 3600_000)) {
        const result = await backupNow('schedule', null);
        const deleted = await applyRetention();
        runtime.logger.info({ backup: result.id, bytes: result.bytes, retentionDeleted: deleted.length }, 'scheduled backup done');
      }
    } catch (err) {
      runtime.logger.error({ err }, 'scheduled backup failed');
    } finally {
      scheduleNext();
    }
  }

  return {
    actions: {
      'backup.create': {
        async handler(ctx: RagmeshContext): Promise<BackupResult> {
          const actor = requireAllowed(ctx, 'backups.manage');
          return backupNow(actor, currentRequest()?.requestId ?? ctx.requestID ?? null);
        },
      },
      'backup.list': {
        async handler(ctx: RagmeshContext): Promise<{ backups: BackupSummary[]; schedule: string | null; keepDaily: number; keepWeekly: number }> {
          requireAllowed(ctx, 'backups.manage');
          const { schedule, keepDaily, keepWeekly } = runtime.config.backup;
          return { backups: await listBackups(await runtime.stores.backups()), schedule, keepDaily, keepWeekly };
        },
      },
      'backup.retention': {
        async handler(ctx: RagmeshContext): Promise<{ deleted: string[] }> {
          const actor = requireAllowed(ctx, 'backups.manage');
          const deleted = await applyRetention();
          if (deleted.length > 0) {
            const db = await runtime.stores.db();
            await new AuditRepository(db.knex).record(null, { actor, action: 'backup.retention', target: null, details: { deleted }, requestId: currentRequest()?.requestId ?? ctx.requestID ?? null });
          }
          return { deleted };
        },
      },
    },
    async started() {
      scheduleNext();
    },
    async stopped() {
      stopping = true;
      if (timer) clearTimeout(timer);
      await running?.catch(() => undefined);
    },
  };
}
