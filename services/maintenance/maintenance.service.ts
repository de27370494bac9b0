import type { ServiceSchema } from 'moleculer';
import { readinessAction, type Runtime } from '../../lib/runtime/service-kit.ts';
import { modelActions } from './models.actions.ts';

export default function maintenanceService(runtime: Runtime): ServiceSchema {
  return {
    name: 'maintenance',
    actions: {
      readiness: readinessAction('maintenance', runtime),
      ...modelActions(runtime),
    },
  };
}
