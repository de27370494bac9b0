import type { ServiceSchema } from 'moleculer';
import { readinessAction, type Runtime } from '../../lib/runtime/service-kit.ts';

export default function llmService(runtime: Runtime): ServiceSchema {
  return {
    name: 'llm',
    actions: {
      readiness: readinessAction('llm', runtime),
    },
  };
}
