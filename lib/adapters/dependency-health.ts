import { EventEmitter } from 'node:events';

export type DependencyName = 'db' | 'kv' | 'objects';

/** What an outage looked like, as counted for logs and metrics. */
export interface DegradationEvent {
  dependency: DependencyName;
  /** Where the fallback happened: `answer-cache`, `stream-cap`, `rate-limit`, … */
  use: string;
  error: string;
}

/**
 * Process-wide record of what ran degraded because a dependency was down: a counter per
 * (dependency, use) and an event per occurrence. The metrics module exposes the
 * counter; the logs get one warning per use and outage, not one per request.
 */
class Degradations extends EventEmitter<{ degraded: [DegradationEvent] }> {
  private readonly counts = new Map<string, number>();

  record(event: DegradationEvent): number {
    const key = `${event.dependency}:${event.use}`;
    const n = (this.counts.get(key) ?? 0) + 1;
    this.counts.set(key, n);
    this.emit('degraded', event);
    return n;
  }

  /** `{ "kv:answer-cache": 3, … }`: totals since the process started. */
  snapshot(): Record<string, number> {
    return Object.fromEntries(this.counts);
  }
}

export const degradations = new Degradations();

/**
 * Whether one dependency of this process is reachable, learnt from the failures its
 * adapter classifies and confirmed by a probe: after the first connection-class
 * failure the dependency is `down` and the probe runs with backoff until it answers,
 * then it is `up` again. Workers wait on it instead of burning deliveries.
 */
export class DependencyHealth extends EventEmitter<{ down: [Error]; up: [number] }> {
  private downSince: number | null = null;
  private probing = false;
  private waiters: Array<() => void> = [];
  private closed = false;

  constructor(
    readonly name: DependencyName,
    private readonly probe: () => Promise<void>,
    private readonly delays = { firstMs: 250, maxMs: 2000 },
  ) {
    super();
  }

  get up(): boolean {
    return this.downSince === null;
  }

  /** Called by the adapter when an operation failed for lack of the dependency. */
  reportDown(err: Error): void {
    if (this.closed) return;
    if (this.downSince === null) {
      this.downSince = Date.now();
      this.emit('down', err);
    }
    if (!this.probing) void this.probeUntilUp();
  }

  /** Resolves at once when up, else when the probe next succeeds (or the health is closed). */
  waitUntilUp(): Promise<void> {
    if (this.up || this.closed) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  close(): void {
    this.closed = true;
    this.release();
  }

  private async probeUntilUp(): Promise<void> {
    this.probing = true;
    let delay = this.delays.firstMs;
    try {
      while (!this.closed && this.downSince !== null) {
        await new Promise((r) => setTimeout(r, delay).unref());
        if (this.closed) return;
        try {
          await this.probe();
          const downMs = Date.now() - this.downSince;
          this.downSince = null;
          this.emit('up', downMs);
          this.release();
        } catch {
          delay = Math.min(delay * 2, this.delays.maxMs);
        }
      }
    } finally {
      this.probing = false;
    }
  }

  private release(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const resolve of waiters) resolve();
  }
}

/**
 * Runs `work` once every dependency in `healths` is up. A worker calls it for each
 * delivery: while one is down it holds at most its prefetch of messages unacknowledged
 * and is handed no more (consumption pauses without spending delivery attempts), and
 * it resumes by itself when the probe answers. `signal` ends the wait (shutdown).
 */
export async function whenUp<T>(healths: DependencyHealth[], work: () => Promise<T>, signal?: AbortSignal): Promise<T> {
  for (;;) {
    const down = healths.find((h) => !h.up);
    if (!down) break;
    await new Promise<void>((resolve, reject) => {
      const onAbort = () => reject(signal!.reason);
      if (signal?.aborted) return onAbort();
      signal?.addEventListener('abort', onAbort, { once: true });
      void down.waitUntilUp().then(() => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      });
    });
  }
  return work();
}
