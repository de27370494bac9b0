import { overloaded } from '../errors.ts';

/**
 * Bounded concurrency with a bounded wait: `limit` holders at once, `queueLimit`
 * waiting; past that acquire() fails at once with the retryable OVERLOADED error
 * (503 + Retry-After at the api) instead of piling up until timeouts.
 */
export class Gate {
  private active = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(
    private readonly limit: number,
    private readonly queueLimit: number,
    private readonly what: string,
  ) {}

  get load(): { active: number; waiting: number } {
    return { active: this.active, waiting: this.waiting.length };
  }

  async acquire(): Promise<() => void> {
    if (this.active >= this.limit) {
      if (this.waiting.length >= this.queueLimit) {
        throw overloaded(`${this.what} is busy: ${this.active} running, ${this.waiting.length} waiting`, 2);
      }
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    } else {
      this.active++;
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiting.shift();
      // The slot passes straight to the next waiter; `active` stays the same.
      if (next) next();
      else this.active--;
    };
  }
}
