import type { ServiceSchema } from 'moleculer';
import { readinessAction, type Runtime } from '../../lib/runtime/service-kit.ts';

export default function analyzeService(runtime: Runtime): ServiceSchema {
  return {
    name: 'analyze',
    actions: {
      readiness: readinessAction('analyze', runtime),
    },
  };
}
