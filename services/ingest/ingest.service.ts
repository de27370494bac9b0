import type { ServiceSchema } from 'moleculer';
import { readinessAction, type Runtime } from '../../lib/runtime/service-kit.ts';
import { closeOcr, ocrActions, ocrEvents } from './ocr.actions.ts';

export default function ingestService(runtime: Runtime): ServiceSchema {
  return {
    name: 'ingest',
    actions: {
      readiness: readinessAction('ingest', runtime),
      ...ocrActions(runtime),
    },
    events: {
      ...ocrEvents(runtime),
    },
    async stopped() {
      await closeOcr(runtime);
    },
  };
}
