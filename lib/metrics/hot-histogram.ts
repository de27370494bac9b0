import type { Metric, Registry } from 'prom-client';

/** One sample as prom-client's Registry formats it (its own type is not exported). */
interface Value {
  metricName: string;
  labels: Record<string, string | number>;
  value: number;
}

/**
 * One label set of a HotHistogram. Callers look it up once (per action, per route and
 * status) and then only call observe(): a bucket search over a few numbers and three
 * additions, no objects made.
 */
export class HistogramChild {
  /** Observations per bucket, not cumulative; the last slot is +Inf. */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(
    readonly labels: Readonly<Record<string, string>>,
    private readonly bounds: readonly number[],
  ) {
    this.counts = new Float64Array(bounds.length + 1);
  }

  observe(seconds: number): void {
    const bounds = this.bounds;
    let i = 0;
    while (i < bounds.length && seconds > bounds[i]!) i++;
    this.counts[i]! += 1;
    this.sum += seconds;
    this.count += 1;
  }
}

/**
 * A Prometheus histogram for the per-request hot path, exported through prom-client's
 * Registry like any other metric. prom-client's Histogram.observe validates and hashes
 * the label object on every call (measured 2.5–3.7 µs on these machines, with a request
 * through the gateway costing 300–400 µs of CPU); here the label work happens once per
 * label set, in child(), and the exposition is built only when Prometheus scrapes.
 */
export class HotHistogram<L extends string> {
  readonly type = 'histogram' as const;
  readonly aggregator = 'sum' as const;
  private readonly children = new Map<string, HistogramChild>();
  private readonly bounds: readonly number[];

  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly L[],
    buckets: readonly number[],
    registry: Registry,
  ) {
    if (labelNames.includes('le' as L)) throw new Error('le is a reserved label name');
    this.bounds = [...buckets].sort((a, b) => a - b);
    registry.registerMetric(this as unknown as Metric);
  }

  /** The series of one label set, made on first use; keep it and call observe() on it. */
  child(labels: Record<L, string>): HistogramChild {
    const key = this.labelNames.map((n) => labels[n]).join('\u0000');
    let child = this.children.get(key);
    if (!child) {
      for (const n of this.labelNames) if (typeof labels[n] !== 'string') throw new Error(`${this.name}: label ${n} missing`);
      child = new HistogramChild(Object.fromEntries(this.labelNames.map((n) => [n, labels[n]])), this.bounds);
      this.children.set(key, child);
    }
    return child;
  }

  /** prom-client's shape of a histogram's values: cumulative _bucket series, then _sum and _count. */
  async get(): Promise<{ name: string; help: string; type: 'histogram'; aggregator: 'sum'; values: Value[] }> {
    const values: Value[] = [];
    for (const child of this.children.values()) {
      let cumulative = 0;
      for (let i = 0; i <= this.bounds.length; i++) {
        cumulative += child.counts[i]!;
        values.push({ metricName: `${this.name}_bucket`, labels: { ...child.labels, le: i < this.bounds.length ? this.bounds[i]! : '+Inf' }, value: cumulative });
      }
      values.push({ metricName: `${this.name}_sum`, labels: { ...child.labels }, value: child.sum });
      values.push({ metricName: `${this.name}_count`, labels: { ...child.labels }, value: child.count });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  reset(): void {
    for (const child of this.children.values()) {
      child.counts.fill(0);
      child.sum = 0;
      child.count = 0;
    }
  }
}
