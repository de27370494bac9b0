import type { ServiceSchema } from 'moleculer';
import { relayOutbox } from '../../lib/jobs/commands.ts';
import { jobsContext, type JobsContext } from '../../lib/jobs/context.ts';
import { JOB_UPDATED_EVENT, jobView } from '../../lib/jobs/model.ts';
import { recoverInMemoryQueue, sweepJobs, type SweepCounts } from '../../lib/jobs/sweep.ts';
import { readinessAction, type Runtime } from '../../lib/runtime/service-kit.ts';
import { backupActions } from './backup.actions.ts';
import { modeActions } from './mode.actions.ts';
import { modelActions } from './models.actions.ts';
import { sweepActions } from './sweep.actions.ts';

/** While the outbox holds messages (the broker was away), they are relayed this often. */
const OUTBOX_RELAY_EVERY_MS = 2000;

/**
 * Model actions, and the job sweepers on a schedule (lib/jobs/sweep.ts): expired
 * leases re-queued or failed, queued jobs without a message re-published, broker
 * dead letters reconciled with their rows; and the outbox relay, which delivers the
 * messages of jobs accepted while RabbitMQ was down.
 */
export default function maintenanceService(runtime: Runtime): ServiceSchema {
  const backups = backupActions(runtime);
  const sweeps = sweepActions(runtime);
  const models = modelActions(runtime);
  const { config } = runtime;
  const timers: NodeJS.Timeout[] = [];
  let jobs: JobsContext | null = null;
  let sweeping: Promise<SweepCounts> | null = null;

  const sweep = (): Promise<SweepCounts> => {
    sweeping ??= sweepJobs(jobs!, { staleAfterMs: config.queue.staleAfterMs })
      .then((counts) => {
        const acted = counts.requeued + counts.failed + counts.republished + counts.reconciled + counts.relayed;
        runtime.logger[acted > 0 ? 'info' : 'debug']({ ...counts }, 'job sweep');
        for (const [action, n] of Object.entries(counts)) if (n > 0) runtime.metrics?.jobSweeps.inc({ action }, n);
        return counts;
      })
      .finally(() => (sweeping = null));
    return sweeping;
  };

  return {
    name: 'maintenance',
    actions: {
      readiness: readinessAction('maintenance', runtime),
      ...models.actions,
      ...backups.actions,
      ...modeActions(runtime),
      ...sweeps.actions,
      /** Runs the job sweepers now (operators, tests); the counts of what it did. */
      sweepJobs: {
        visibility: 'public',
        async handler(): Promise<SweepCounts> {
          return sweep();
        },
      },
    },
    events: { ...models.events },

    async started() {
      await backups.started();
      await sweeps.started();
      await models.started(this.broker);
      const broker = this.broker;
      jobs = await jobsContext(runtime, {
        updated: (job) => void broker.broadcast(JOB_UPDATED_EVENT, jobView(job)).catch(() => undefined),
        cancelRequested: () => undefined,
      });
      const queue = await runtime.stores.queue();
      if (queue.backend === 'memory') {
        const count = await recoverInMemoryQueue(jobs);
        if (count > 0) runtime.logger.info({ count }, 'unfinished jobs queued again after a restart');
      }
      const every = (ms: number, work: () => Promise<unknown>, what: string) => {
        const timer = setInterval(() => void work().catch((err: unknown) => runtime.logger.warn({ err }, `${what} failed`)), ms);
        timer.unref();
        timers.push(timer);
      };
      every(config.queue.sweepIntervalMs, sweep, 'job sweep');
      every(OUTBOX_RELAY_EVERY_MS, async () => {
        const { relayed } = await relayOutbox(jobs!, { limit: 500 });
        if (relayed > 0) {
          runtime.logger.info({ relayed }, 'job outbox relayed');
          runtime.metrics?.jobSweeps.inc({ action: 'relayed' }, relayed);
        }
      }, 'job outbox relay');
    },

    async stopped() {
      for (const timer of timers.splice(0)) clearInterval(timer);
      await sweeping?.catch(() => undefined);
      await models.stopped();
      await sweeps.stopped();
      await backups.stopped();
    },
  };
}
