import type { ServiceSchema } from 'moleculer';
import type { Role } from '../../../lib/auth/jwt.ts';
import type { Runtime } from '../../../lib/runtime/service-kit.ts';

/**
 * A slice of the gateway: its REST aliases under /api/v1, the api actions behind
 * them, the roles those actions need, and any route of its own (another path prefix,
 * raw SSE handlers, multipart). services/api/api.service.ts merges every module.
 */
export interface ApiRouteModule {
  /** Added to the authenticated /api/v1 route, e.g. { 'POST search': 'api.search' }. */
  aliases?: Record<string, unknown>;
  /**
   * Non-GET aliases of this module that change nothing (e.g. `POST search`), so they
   * stay open in maintenance mode; every other non-GET request is a write.
   */
  reads?: string[];
  /** Actions of the api service (names without the `api.` prefix). */
  actions?: NonNullable<ServiceSchema['actions']>;
  /** Full action name → roles, any of which lets a caller through the gateway. */
  roles?: Record<string, Role[]>;
  /** Whole moleculer-web routes, e.g. { path: '/v1', authentication: true, aliases: {...} }. */
  routes?: Array<Record<string, unknown>>;
  /** Moleculer event handlers of the api service (e.g. job updates feeding SSE streams). */
  events?: NonNullable<ServiceSchema['events']>;
  /** Methods of the api service (raw alias handlers call them with `this`). */
  methods?: NonNullable<ServiceSchema['methods']>;
  started?: () => Promise<void>;
  stopped?: () => Promise<void>;
}

export type ApiRouteFactory = (runtime: Runtime) => ApiRouteModule;
