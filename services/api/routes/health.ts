import { appError } from '../../../lib/errors.ts';
import { buildInfo } from '../../../lib/runtime/build-info.ts';
import type { RagmeshContext, Readiness, Runtime } from '../../../lib/runtime/service-kit.ts';
import type { MaintenanceGate } from '../maintenance-gate.ts';
import { openApiDocument } from '../openapi.ts';
import { endpoint, type Endpoint } from './module.ts';

/** Health, readiness, version and metrics: public, at the root. */
export function healthEndpoints(runtime: Runtime, maintenance: () => MaintenanceGate, all: () => Endpoint[]): Endpoint[] {
  let document: Record<string, unknown> | null = null;
  return [
    endpoint({
      method: 'GET',
      path: '/api/openapi.json',
      summary: 'This API as OpenAPI 3.1, generated from the route declarations',
      public: true,
      response: { schema: { type: 'object', required: ['openapi', 'paths'], properties: { openapi: { const: '3.1.0' }, paths: { type: 'object' } } } },
      action: 'openapi',
      handler: () => (document ??= openApiDocument(all(), { version: buildInfo(runtime.config).version })),
    }),
    endpoint({
      method: 'GET',
      path: '/healthz',
      summary: 'Liveness: 200 while the process lives',
      public: true,
      quiet: true,
      response: { schema: { type: 'object', required: ['status'], properties: { status: { const: 'ok' } } } },
      action: 'healthz',
      handler: () => ({ status: 'ok' }),
    }),
    endpoint({
      method: 'GET',
      path: '/readyz',
      summary: "Readiness of this api node's stores; 503 when one fails, so a load balancer skips it",
      public: true,
      quiet: true,
      response: { schema: { type: 'object', required: ['service', 'ready', 'checks'], properties: { service: { type: 'string' }, ready: { type: 'boolean' }, checks: { type: 'object' } } } },
      action: 'readyz',
      async handler(ctx: RagmeshContext): Promise<Readiness> {
        const readiness = (await ctx.call('api.readiness', {}, { nodeID: ctx.broker.nodeID })) as Readiness;
        if (!readiness.ready) ctx.meta.$statusCode = 503;
        return readiness;
      },
    }),
    endpoint({
      method: 'GET',
      path: '/api/version',
      summary: 'Name, version, commit, Node version, profile and maintenance mode',
      public: true,
      quiet: true,
      response: { schema: { type: 'object', required: ['name', 'version', 'node', 'profile'], properties: { name: { type: 'string' }, version: { type: 'string' }, node: { type: 'string' }, profile: { type: 'string' } } } },
      action: 'version',
      handler: async () => ({ ...buildInfo(runtime.config), maintenance: await maintenance().current() }),
    }),
    endpoint({
      method: 'GET',
      path: '/metrics',
      summary: 'Prometheus metrics of this replica (nginx does not pass it from outside)',
      public: true,
      quiet: true,
      response: { contentType: 'text/plain' },
      errors: ['ROUTE_NOT_FOUND'],
      action: 'metrics',
      async handler(ctx: RagmeshContext): Promise<string> {
        if (!runtime.metrics) throw appError('ROUTE_NOT_FOUND', 'This process exports no metrics');
        const { contentType, body } = await runtime.metrics.render();
        ctx.meta.$responseType = contentType;
        return body;
      },
    }),
  ];
}
