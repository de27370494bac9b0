import type { ServiceSchema } from 'moleculer';
import { readinessAction, type Runtime } from '../../lib/runtime/service-kit.ts';
import { backupActions } from './backup.actions.ts';
import { modeActions } from './mode.actions.ts';
import { modelActions } from './models.actions.ts';
import { sweepActions } from './sweep.actions.ts';

export default function maintenanceService(runtime: Runtime): ServiceSchema {
  const backups = backupActions(runtime);
  const sweeps = sweepActions(runtime);
  const models = modelActions(runtime);
  return {
    name: 'maintenance',
    actions: {
      readiness: readinessAction('maintenance', runtime),
      ...models.actions,
      ...backups.actions,
      ...modeActions(runtime),
      ...sweeps.actions,
    },
    events: { ...models.events },
    async started() {
      await backups.started();
      await sweeps.started();
      await models.started(this.broker);
    },
    async stopped() {
      await models.stopped();
      await sweeps.stopped();
      await backups.stopped();
    },
  };
}
