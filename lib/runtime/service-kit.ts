import type { ServiceSchema, Context } from 'moleculer';
import type { Logger } from 'pino';
import type { Config, ServiceName } from '../config/env.ts';
import type { Principal } from '../auth/jwt.ts';
import type { Metrics } from '../metrics/metrics.ts';
import type { StoreName, Stores } from './stores.ts';

/** What a service factory receives: the validated config and the process's stores. */
export interface Runtime {
  config: Config;
  stores: Stores;
  logger: Logger;
  jwtSecret: string;
  /** This process's Prometheus metrics; absent in unit tests that build a bare runtime. */
  metrics?: Metrics;
}

export type ServiceFactory = (runtime: Runtime) => ServiceSchema;

/** ctx.meta as ragmesh uses it; the api fills `auth` from the verified token. */
export interface CallMeta {
  auth?: Principal;
  $statusCode?: number;
  /** Location header of a 201. */
  $location?: string;
  $responseHeaders?: Record<string, string>;
  $responseType?: string;
}

export type RagmeshContext<P = unknown> = Context<P, CallMeta>;

export interface Readiness {
  service: ServiceName;
  nodeId: string;
  ready: boolean;
  checks: Record<string, { ok: boolean; ms: number; error?: string }>;
}

/**
 * The stores each service depends on: opened at boot (so a bad DATABASE_URL fails
 * the boot, not the first request) and pinged by its readiness action.
 */
export function storesNeededBy(service: ServiceName, config: Config): StoreName[] {
  switch (service) {
    case 'api':
      // Uploads land in objects and their jobs in the queue; deletes reach the vectors.
      return ['db', 'kv', 'objects', 'queue', 'vectors'];
    case 'emb':
      // Model flags live in the database, model files in the models bucket.
      return ['db', 'models'];
    case 'llm':
      // The llama backend loads its GGUF model like every model: flag in the database, file from the models bucket.
      return config.llm.backend === 'llama' ? ['db', 'models'] : [];
    case 'ingest':
      return ['db', 'kv', 'objects', 'queue', 'vectors', 'models'];
    case 'analyze':
      return ['db', 'objects'];
    case 'maintenance':
      // The job sweepers and the outbox relay publish to the queue.
      return ['db', 'queue'];
  }
}

/**
 * Every service answers `<name>.readiness`: whether the stores it depends on are
 * reachable from this node. Health endpoints and the api's status page call it.
 */
export function readinessAction(service: ServiceName, runtime: Runtime, stores = storesNeededBy(service, runtime.config)) {
  return {
    visibility: 'public' as const,
    async handler(ctx: RagmeshContext): Promise<Readiness> {
      const checks = await runtime.stores.check(stores);
      return {
        service,
        nodeId: ctx.broker.nodeID,
        ready: Object.values(checks).every((c) => c.ok),
        checks,
      };
    },
  };
}
