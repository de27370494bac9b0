import type { ServiceSchema } from 'moleculer';
import { readinessAction, type Runtime } from '../../lib/runtime/service-kit.ts';

export default function embService(runtime: Runtime): ServiceSchema {
  return {
    name: 'emb',
    actions: {
      readiness: readinessAction('emb', runtime),
    },
  };
}
