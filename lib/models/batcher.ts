import { appError, overloaded } from '../errors.ts';

export interface BatcherOptions<I = unknown, O = unknown> {
  /** Largest number of inputs in one model call. */
  maxBatch: number;
  /** Inputs accepted and not yet answered, across all callers; more are refused. */
  queueLimit: number;
  /** What an overloaded caller is told to wait. */
  retryAfterSeconds?: number;
  /** Named in errors ("emb model e5"). */
  name: string;
  /** Told about every model call: its size and how long each input waited for it (metrics). */
  onBatch?: (size: number, waitedSeconds: number[]) => void;
  /**
   * Largest batch of background inputs (re-index): smaller than `maxBatch` so a query
   * that arrives while one runs waits for less.
   */
  backgroundBatch?: number;
  /** Process-wide: background batches wait while any model runs foreground inputs. */
  gate?: ForegroundGate;
  /**
   * Runs background batches somewhere else than `run` (another thread): they then
   * get a loop of their own and never sit between a foreground input and the model.
   */
  runBackground?: (batch: I[]) => Promise<O[]>;
}

/**
 * Shared by every model of a process: foreground model runs in progress. Background
 * batches of any model wait until none is running, so a query on the active version
 * does not share the CPU with a re-index of another version.
 */
export class ForegroundGate {
  private active = 0;
  private waiters: Array<() => void> = [];

  enter(): void {
    this.active++;
  }

  leave(): void {
    if (--this.active > 0) return;
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }

  /** Resolves when no foreground run is in progress. */
  idle(): Promise<void> {
    if (this.active === 0) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }
}

/**
 * `interactive` (a search's query) runs at the next batch boundary, ahead of whatever
 * round is in progress; `foreground` (ingest's passages) runs in rounds; `background`
 * (re-index) runs only when nothing else waits.
 */
export type Priority = 'interactive' | 'foreground' | 'background';

interface Request<O> {
  results: O[];
  remaining: number;
  failed: boolean;
  resolve(results: O[]): void;
  reject(err: unknown): void;
}

interface Slot<I, O> {
  item: I;
  index: number;
  request: Request<O>;
  /** performance.now() when submitted. */
  at: number;
}

/**
 * Dynamic micro-batching: concurrent callers' inputs are pooled while the model is
 * busy and run together as soon as it is free, so there is no fixed delay and a lone
 * caller runs at once. Each round takes everything waiting, sorts it by length (a
 * batch pads to its longest input, so mixing lengths wastes compute) and runs it in
 * batches of at most `maxBatch`. The number of inputs in the system is bounded: past
 * `queueLimit` a caller gets the retryable OVERLOADED error instead of a growing
 * backlog and a timeout.
 */
export class MicroBatcher<I extends { ids: ArrayLike<unknown> }, O> {
  private waiting: Slot<I, O>[] = [];
  private urgent: Slot<I, O>[] = [];
  private background: Slot<I, O>[] = [];
  private outstanding = 0;
  private running = false;
  private backgroundRunning = false;

  constructor(
    private readonly run: (batch: I[]) => Promise<O[]>,
    private readonly options: BatcherOptions<I, O>,
  ) {}

  /** Inputs accepted and not yet answered. */
  get depth(): number {
    return this.outstanding;
  }

  /** Throws the error submit() would throw for `count` more inputs right now. */
  assertCapacity(count: number): void {
    if (count > this.options.queueLimit) {
      throw appError('BATCH_TOO_LARGE', `${this.options.name}: at most ${this.options.queueLimit} inputs per call (got ${count})`);
    }
    if (this.outstanding + count > this.options.queueLimit) {
      throw overloaded(`${this.options.name} is overloaded: ${this.outstanding} inputs queued (limit ${this.options.queueLimit})`, this.options.retryAfterSeconds ?? 1);
    }
  }

  submit(items: I[], priority: Priority = 'foreground'): Promise<O[]> {
    if (items.length === 0) return Promise.resolve([]);
    this.assertCapacity(items.length);
    this.outstanding += items.length;
    return new Promise<O[]>((resolve, reject) => {
      const request: Request<O> = { results: new Array<O>(items.length), remaining: items.length, failed: false, resolve, reject };
      const at = performance.now();
      const queue = priority === 'background' ? this.background : priority === 'interactive' ? this.urgent : this.waiting;
      items.forEach((item, index) => queue.push({ item, index, request, at }));
      if (priority === 'background' && this.options.runBackground) void this.pumpBackground(this.options.runBackground);
      else void this.pump();
    });
  }

  private async pump(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      while (this.urgent.length > 0 || this.waiting.length > 0 || (!this.options.runBackground && this.background.length > 0)) {
        if (this.urgent.length === 0 && this.waiting.length === 0) {
          // Background work one small batch at a time, so foreground inputs that
          // arrive meanwhile are taken at the next turn of the loop.
          await this.options.gate?.idle();
          if (this.urgent.length > 0 || this.waiting.length > 0) continue;
          const size = Math.min(this.options.backgroundBatch ?? this.options.maxBatch, this.options.maxBatch);
          await this.runBatch(this.background.splice(0, size));
          continue;
        }
        const round = this.waiting;
        this.waiting = [];
        round.sort((a, b) => a.item.ids.length - b.item.ids.length);
        this.options.gate?.enter();
        try {
          // Queries that arrive during a round of passages (an ingest of many documents
          // is hundreds of them) wait for the batch in progress only, not for the round.
          await this.runUrgent();
          for (let start = 0; start < round.length; start += this.options.maxBatch) {
            await this.runBatch(round.slice(start, start + this.options.maxBatch));
            if (start + this.options.maxBatch >= round.length) break;
            // A model run holds the event loop (onnxruntime computes on the calling
            // thread): let the requests that arrived meanwhile in before the next batch.
            await new Promise((resolve) => setImmediate(resolve));
            await this.runUrgent();
          }
        } finally {
          this.options.gate?.leave();
        }
      }
    } finally {
      this.running = false;
    }
  }

  /** Every interactive input waiting, in batches, before anything else. */
  private async runUrgent(): Promise<void> {
    while (this.urgent.length > 0) {
      const round = this.urgent;
      this.urgent = [];
      round.sort((a, b) => a.item.ids.length - b.item.ids.length);
      for (let start = 0; start < round.length; start += this.options.maxBatch) {
        await this.runBatch(round.slice(start, start + this.options.maxBatch));
      }
    }
  }

  /** Background inputs on their own lane: one small batch at a time, each after foreground runs are over. */
  private async pumpBackground(run: (batch: I[]) => Promise<O[]>): Promise<void> {
    if (this.backgroundRunning) return;
    this.backgroundRunning = true;
    try {
      while (this.background.length > 0) {
        await this.options.gate?.idle();
        const size = Math.min(this.options.backgroundBatch ?? this.options.maxBatch, this.options.maxBatch);
        await this.runBatch(this.background.splice(0, size), run);
      }
    } finally {
      this.backgroundRunning = false;
    }
  }

  private async runBatch(slots: Slot<I, O>[], run: (batch: I[]) => Promise<O[]> = this.run): Promise<void> {
    // Inputs of a request that already failed are not worth computing.
    const live = slots.filter((s) => !s.request.failed);
    this.outstanding -= slots.length - live.length;
    if (live.length === 0) return;
    if (this.options.onBatch) {
      const now = performance.now();
      this.options.onBatch(live.length, live.map((s) => (now - s.at) / 1000));
    }
    let outputs: O[];
    try {
      outputs = await run(live.map((s) => s.item));
    } catch (err) {
      this.outstanding -= live.length;
      for (const s of live) {
        if (s.request.failed) continue;
        s.request.failed = true;
        s.request.reject(err);
      }
      return;
    }
    this.outstanding -= live.length;
    live.forEach((s, i) => {
      s.request.results[s.index] = outputs[i]!;
      if (--s.request.remaining === 0) s.request.resolve(s.request.results);
    });
  }
}
