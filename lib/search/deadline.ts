/**
 * How long to wait for a call that usually answers fast: long enough for its normal
 * latency with room to spare (`factor` × the p95 of recent successes, at least
 * `floorMs`), never longer than `ceilingMs`. Until `minSamples` successes are seen
 * (a cold model, a fresh process) the ceiling applies.
 *
 * Why: the query embedding is one leg of a search. When emb vanishes (killed,
 * partitioned) the first search would wait the whole leg timeout before the broker
 * notices; with a deadline from observed latency it gives up within a fraction of a
 * second and answers lexical-only, `degraded`.
 */
export class AdaptiveDeadline {
  private readonly samples: number[] = [];
  private next = 0;

  constructor(
    private readonly options: { floorMs: number; ceilingMs: number; factor?: number; minSamples?: number; window?: number },
  ) {}

  /** Records the latency of a call that succeeded. */
  observe(ms: number): void {
    const window = this.options.window ?? 100;
    if (this.samples.length < window) this.samples.push(ms);
    else this.samples[this.next] = ms;
    this.next = (this.next + 1) % window;
  }

  /** How many successes the deadline is drawn from (at most the window). */
  get sampleCount(): number {
    return this.samples.length;
  }

  /** The deadline for the next call, in ms. */
  get ms(): number {
    // Five successes are enough: below 20 the p95 below is simply the slowest of them. The
    // partition scenario cut emb off after about ten searches, and with 20 required the
    // first search after the cut waited the whole ceiling (2 s) instead of the floor.
    const { floorMs, ceilingMs, factor = 5, minSamples = 5 } = this.options;
    if (this.samples.length < minSamples) return ceilingMs;
    const sorted = [...this.samples].sort((a, b) => a - b);
    const p95 = sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.95))]!;
    return Math.round(Math.min(ceilingMs, Math.max(floorMs, p95 * factor)));
  }
}
