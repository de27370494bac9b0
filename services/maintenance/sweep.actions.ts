import type { ServiceSchema } from 'moleculer';
import { collectionFor } from '../../lib/ports/vector-store.ts';
import { currentRequest } from '../../lib/logging.ts';
import { AuditRepository } from '../../lib/repositories/audit.ts';
import { ModelsRepository } from '../../lib/repositories/models.ts';
import { SweepsRepository } from '../../lib/repositories/sweeps.ts';
import type { RagmeshContext, Runtime } from '../../lib/runtime/service-kit.ts';
import { sweepOrphans, type OrphanSweepResult } from '../../lib/sweepers/orphans.ts';
import { requireAllowed } from './admin.ts';

export interface SweepResult extends OrphanSweepResult {
  chatsDeleted: number;
}

/**
 * The orphan and retention sweepers of the maintenance service, every
 * ORPHAN_SWEEP_INTERVAL_MINUTES (one replica at a time, by a KV lock) and on demand
 * through `sweep.run`. Counts are logged and exported as ragmesh_sweep_items_total.
 */
export function sweepActions(runtime: Runtime): {
  actions: NonNullable<ServiceSchema['actions']>;
  started(): Promise<void>;
  stopped(): Promise<void>;
} {
  let timer: NodeJS.Timeout | null = null;
  let running: Promise<SweepResult> | null = null;

  async function sweep(): Promise<SweepResult> {
    running ??= (async () => {
      const { knex } = await runtime.stores.db();
      const repo = new SweepsRepository(knex);
      const collections = (await new ModelsRepository(knex).listVersions())
        .filter((v) => v.kind === 'embed')
        .map((v) => collectionFor(v.alias, v.version));
      const orphans = await sweepOrphans({
        repo,
        objects: await runtime.stores.objects(),
        vectors: await runtime.stores.vectors(),
        collections,
        minAgeMs: runtime.config.sweep.orphanMinAgeMs,
        logger: runtime.logger,
      });
      const chatsDeleted = await repo.deleteExpiredChats(runtime.config.sweep.chatRetentionDays);
      if (chatsDeleted > 0) runtime.logger.info({ chatsDeleted }, 'expired chats deleted');
      const counter = runtime.metrics?.sweepItems;
      counter?.inc({ sweeper: 'orphans', item: 'uploads_removed' }, orphans.uploadsRemoved);
      counter?.inc({ sweeper: 'orphans', item: 'artifacts_removed' }, orphans.artifactsRemoved);
      counter?.inc({ sweeper: 'orphans', item: 'vectors_removed' }, orphans.vectorsRemoved);
      counter?.inc({ sweeper: 'orphans', item: 'rows_missing_object' }, orphans.rowsMissingObject.length);
      counter?.inc({ sweeper: 'chats', item: 'chats_deleted' }, chatsDeleted);
      return { ...orphans, chatsDeleted };
    })().finally(() => {
      running = null;
    });
    return running;
  }

  function schedule(): void {
    const { intervalMs } = runtime.config.sweep;
    if (intervalMs <= 0) return;
    timer = setTimeout(async () => {
      try {
        const kv = await runtime.stores.kv();
        const slot = Math.floor(Date.now() / intervalMs);
        if (await kv.setIfAbsent(`sweep:orphans:${slot}`, String(process.pid), intervalMs)) await sweep();
      } catch (err) {
        runtime.logger.error({ err }, 'orphan sweep failed');
      } finally {
        schedule();
      }
    }, intervalMs);
    timer.unref();
  }

  return {
    actions: {
      'sweep.run': {
        async handler(ctx: RagmeshContext): Promise<SweepResult> {
          const actor = requireAllowed(ctx, 'sweeps.run');
          const result = await sweep();
          // A sweep on demand deletes what it finds: who asked, and what went, is audited (deployment-wide).
          await new AuditRepository((await runtime.stores.db()).knex).record(null, {
            actor,
            action: 'sweep.run',
            target: null,
            details: { ...result, ...(ctx.meta.auth ? { tenantId: ctx.meta.auth.tenantId } : {}) },
            requestId: currentRequest()?.requestId ?? ctx.requestID ?? null,
          });
          return result;
        },
      },
    },
    async started() {
      schedule();
    },
    async stopped() {
      if (timer) clearTimeout(timer);
      await running?.catch(() => undefined);
    },
  };
}
