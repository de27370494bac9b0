import { overloaded } from '../errors.ts';

export interface AdmissionSettings {
  /** Searches running at once (holding a slot). */
  concurrency: number;
  /** Most searches waiting for a slot, whatever the estimate says. */
  queueLimit: number;
  /**
   * Longest a search may wait for its slot. A search whose expected wait (from the
   * measured service time) is longer is refused at once; one that has waited this long
   * after all (the estimate was low) is refused then.
   */
  maxWaitMs: number;
}

/** Weight of the newest slot-holding time in the service time's moving average and deviation. */
const SMOOTHING = 0.2;

interface Waiter {
  admit: () => void;
  timer: NodeJS.Timeout | undefined;
}

/**
 * Admission control of searches: `concurrency` run at once, a few wait, the rest are
 * refused at once with the retryable OVERLOADED error (503 + Retry-After at the api).
 *
 * The queue is bounded by the wait it means, not only by its length: each search's time
 * in its slot is measured (a moving average S and mean deviation D), and with all slots
 * taken the k-th waiter gets its turn after about k·(S + 2D)/concurrency. A search that would wait longer
 * than `maxWaitMs` is refused before it waits at all, and Retry-After is the time the
 * searches already admitted need to drain, (running + waiting)·S/concurrency, in whole
 * seconds (at least 1). Before the first search ends there is no estimate: the length
 * alone (`queueLimit`) bounds the queue.
 *
 * A slot is handed over only after the event loop has gone round once (setImmediate).
 * On PGlite every statement runs on this thread and its answer comes back as a
 * microtask, so a search, once started, runs to its end without the loop reading a
 * single socket: requests that arrive meanwhile wait unseen in the kernel, and a search
 * admitted on release would start at once behind it. Without the yield the gate never
 * saw anyone waiting (bench:search-load: every search found 0 running and 0 waiting,
 * while 32 clients waited 8-12 s); with it, requests that arrived during a search reach
 * the gate, and are queued or refused, before the next search starts.
 */
export class SearchAdmission {
  private active = 0;
  private readonly waiting: Waiter[] = [];
  private serviceMs: number | null = null;
  /** Moving mean absolute deviation of the slot-holding time. */
  private deviationMs = 0;
  /** Searches refused since the process started (by the estimate, the length, or after waiting). */
  refused = 0;

  constructor(
    private readonly settings: AdmissionSettings,
    private readonly clock: () => number = () => performance.now(),
  ) {}

  get load(): { active: number; waiting: number; serviceMs: number | null; deviationMs: number } {
    return { active: this.active, waiting: this.waiting.length, serviceMs: this.serviceMs, deviationMs: this.deviationMs };
  }

  /**
   * Expected wait of a search that would join the queue now (ms); 0 while a slot is
   * free. A search is counted at its mean time plus twice its mean deviation: with the
   * mean alone, on a busy machine about half the waiters outlived the estimate and were
   * refused only after waiting the whole budget (bench:search-load on the mesh: refusals
   * at p95 1.0 s), where a refusal should come back at once.
   */
  expectedWaitMs(): number {
    if (this.active < this.settings.concurrency) return 0;
    return ((this.waiting.length + 1) * ((this.serviceMs ?? 0) + 2 * this.deviationMs)) / this.settings.concurrency;
  }

  /** Whole seconds after which the searches admitted now should be done. */
  retryAfterSeconds(): number {
    const drainMs = ((this.active + this.waiting.length) * (this.serviceMs ?? 0)) / this.settings.concurrency;
    return Math.max(1, Math.ceil(drainMs / 1000));
  }

  /**
   * A slot: resolves with its release (call it once the search is done), or rejects
   * with OVERLOADED — at once when the queue is full or its wait would exceed the budget,
   * or when the search has waited `maxWaitMs` for its turn.
   */
  acquire(): Promise<() => void> {
    const { concurrency, queueLimit, maxWaitMs } = this.settings;
    if (this.active < concurrency && this.waiting.length === 0) {
      this.active++;
      return new Promise((resolve) => setImmediate(() => resolve(this.releaser(this.clock()))));
    }
    if (this.waiting.length >= queueLimit) {
      return Promise.reject(this.refusal(`${this.active} running, ${this.waiting.length} waiting (the most that may wait)`));
    }
    const expected = this.expectedWaitMs();
    if (expected > maxWaitMs) {
      return Promise.reject(this.refusal(`${this.active} running, ${this.waiting.length} waiting: about ${Math.round(expected)} ms to wait, over ${maxWaitMs} ms`));
    }
    return new Promise<() => void>((resolve, reject) => {
      const waiter: Waiter = {
        admit: () => {
          clearTimeout(waiter.timer);
          setImmediate(() => resolve(this.releaser(this.clock())));
        },
        timer: undefined,
      };
      // (An unbounded wait, Infinity, sets no timer: Node would fire it after 1 ms.)
      if (Number.isFinite(maxWaitMs)) {
        waiter.timer = setTimeout(() => {
          const at = this.waiting.indexOf(waiter);
          if (at < 0) return;
          this.waiting.splice(at, 1);
          reject(this.refusal(`waited ${maxWaitMs} ms for a turn (${this.active} running, ${this.waiting.length} waiting)`));
        }, maxWaitMs);
      }
      this.waiting.push(waiter);
    });
  }

  private refusal(why: string): Error {
    this.refused++;
    return overloaded(`Search is busy: ${why}; retry shortly`, this.retryAfterSeconds());
  }

  private releaser(startedAt: number): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const held = this.clock() - startedAt;
      if (this.serviceMs === null) this.serviceMs = held;
      else {
        this.deviationMs += SMOOTHING * (Math.abs(held - this.serviceMs) - this.deviationMs);
        this.serviceMs += SMOOTHING * (held - this.serviceMs);
      }
      const next = this.waiting.shift();
      // The slot passes straight to the next waiter; `active` stays the same.
      if (next) next.admit();
      else this.active--;
    };
  }
}
