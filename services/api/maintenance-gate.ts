import { appError } from '../../lib/errors.ts';
import { MAINTENANCE_OFF, SystemRepository, type MaintenanceMode } from '../../lib/repositories/system.ts';
import type { Runtime } from '../../lib/runtime/service-kit.ts';

/** How long a replica trusts its copy when it missed the change event (a broker blink). */
const STALE_AFTER_MS = 2000;
const RETRY_AFTER_SECONDS = 60;

/**
 * Maintenance (read-only) mode as one api replica sees it: the row in the database,
 * cached for two seconds and dropped at once on the `maintenance.changed` event.
 * While it is on, every request that changes something gets 503 MAINTENANCE with
 * Retry-After; reads, search and the switch that leaves the mode go on.
 */
export class MaintenanceGate {
  private mode: MaintenanceMode = MAINTENANCE_OFF;
  private readAt = 0;
  private pending: Promise<MaintenanceMode> | null = null;

  constructor(
    private readonly runtime: Runtime,
    /** `METHOD /full/path` of the non-GET routes that change nothing (search, embeddings…). */
    private readonly reads: Set<string>,
  ) {}

  /** The current mode; a database that cannot be read leaves the last known one in force. */
  async current(): Promise<MaintenanceMode> {
    if (Date.now() - this.readAt < STALE_AFTER_MS) return this.mode;
    this.pending ??= (async () => {
      try {
        this.mode = await new SystemRepository((await this.runtime.stores.db()).knex).maintenance();
        this.readAt = Date.now();
      } catch (err) {
        this.runtime.logger.warn({ err }, 'maintenance mode could not be read; keeping the last known state');
      }
      return this.mode;
    })().finally(() => {
      this.pending = null;
    });
    return this.pending;
  }

  changed(mode: MaintenanceMode): void {
    this.mode = { ...MAINTENANCE_OFF, ...mode };
    this.readAt = Date.now();
  }

  /**
   * Rejects with 503 MAINTENANCE a write while the mode is on. Reads are let through
   * without a promise (undefined): they are most requests, and this runs before each.
   */
  check(method: string, fullPath: string): Promise<void> | undefined {
    if (method === 'GET' || method === 'HEAD' || method === 'OPTIONS') return undefined;
    const route = `${method} ${fullPath}`;
    if (this.reads.has(route)) return undefined;
    return this.current().then((mode) => this.refuseIn(mode));
  }

  private refuseIn(mode: MaintenanceMode): void {
    if (!mode.enabled) return;
    throw appError(
      'MAINTENANCE',
      `ragmesh is in maintenance mode${mode.reason ? ` (${mode.reason})` : ''}: reads and search work, changes are refused until it ends`,
      { retryAfterSeconds: RETRY_AFTER_SECONDS, since: mode.since },
    );
  }
}
