import type { ServiceSchema } from 'moleculer';
import { readinessAction, type Runtime } from '../../lib/runtime/service-kit.ts';

export default function ingestService(runtime: Runtime): ServiceSchema {
  return {
    name: 'ingest',
    actions: {
      readiness: readinessAction('ingest', runtime),
    },
  };
}
