import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { HotHistogram } from './hot-histogram.ts';

/**
 * The Prometheus metrics of one ragmesh process. Each booted node owns one instance
 * (and its own Registry), so two nodes in one test process never share series and
 * nothing outlives the node. Every label here has a bounded set of values: routes are
 * the declared alias patterns, actions the declared action names, job types and
 * stages come from code, queues from the job types (lib/jobs/types), models from the operator's aliases.
 * No ids, tenants or users.
 */
export class Metrics {
  readonly registry = new Registry();

  /**
   * API requests by declared route (alias pattern, not the URL) and status. Observed on
   * every request and action call, so these two are HotHistograms: label children made
   * once, no per-observation label hashing.
   */
  readonly httpDuration = new HotHistogram(
    'ragmesh_http_request_duration_seconds',
    'Time from request to the end of the response, by method, route (declared alias) and status code',
    ['method', 'route', 'status'] as const,
    [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    this.registry,
  );

  readonly actionDuration = new HotHistogram(
    'ragmesh_action_duration_seconds',
    'Duration of Moleculer actions handled by this process, by action',
    ['action'] as const,
    [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    this.registry,
  );

  readonly actionErrors = new Counter({
    name: 'ragmesh_action_errors_total',
    help: 'Moleculer actions handled by this process that threw, by action and error code',
    labelNames: ['action', 'code'] as const,
    registers: [this.registry],
  });

  readonly jobStageDuration = new Histogram({
    name: 'ragmesh_job_stage_duration_seconds',
    help: 'Time a job spent in one stage (step), by job type, stage and outcome (ok, failed, retry, canceled)',
    labelNames: ['type', 'stage', 'outcome'] as const,
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900],
    registers: [this.registry],
  });

  readonly jobOutcomes = new Counter({
    name: 'ragmesh_jobs_finished_total',
    help: 'Job attempts that ended, by job type and outcome (ready, failed, canceled, retry)',
    labelNames: ['type', 'outcome'] as const,
    registers: [this.registry],
  });

  readonly jobsStarted = new Counter({
    name: 'ragmesh_jobs_started_total',
    help: 'Job attempts a worker of this process started, by job type',
    labelNames: ['type'] as const,
    registers: [this.registry],
  });

  readonly jobSweeps = new Counter({
    name: 'ragmesh_job_sweep_total',
    help: 'What the job sweepers did, by action (requeued: lease expired; failed: lease expired with no attempts left; republished: queued without a message; reconciled: dead-lettered by RabbitMQ; relayed: outbox messages)',
    labelNames: ['action'] as const,
    registers: [this.registry],
  });

  readonly embBatchSize = new Histogram({
    name: 'ragmesh_embedding_batch_size',
    help: 'Texts in one embedding model call, by model alias',
    labelNames: ['model'] as const,
    buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256],
    registers: [this.registry],
  });

  readonly embQueueWait = new Histogram({
    name: 'ragmesh_embedding_queue_wait_seconds',
    help: 'Time a text waited for its batch to start, by model alias',
    labelNames: ['model'] as const,
    buckets: [0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  });

  readonly llmFirstToken = new Histogram({
    name: 'ragmesh_llm_first_token_seconds',
    help: 'Time from a generation request to its first token, by backend',
    labelNames: ['backend'] as const,
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30],
    registers: [this.registry],
  });

  readonly llmTokensPerSecond = new Histogram({
    name: 'ragmesh_llm_tokens_per_second',
    help: 'Generation speed of one answer after its first token, by backend',
    labelNames: ['backend'] as const,
    buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000],
    registers: [this.registry],
  });

  /** What the maintenance sweepers and backups did, by sweeper and what was counted. */
  readonly sweepItems = new Counter({
    name: 'ragmesh_sweep_items_total',
    help: 'Items a maintenance sweeper removed or reported, by sweeper (orphans, chats) and item (uploads_removed, artifacts_removed, vectors_removed, rows_missing_object, chats_deleted)',
    labelNames: ['sweeper', 'item'] as const,
    registers: [this.registry],
  });

  readonly backups = new Counter({
    name: 'ragmesh_backups_total',
    help: 'Backups taken by this process, by trigger (schedule, request) and outcome (ok, failed)',
    labelNames: ['trigger', 'outcome'] as const,
    registers: [this.registry],
  });

  readonly llmTokens = new Counter({
    name: 'ragmesh_llm_tokens_total',
    help: 'Tokens generated, by backend',
    labelNames: ['backend'] as const,
    registers: [this.registry],
  });

  /** Where the lexical leg's postings held in memory are read from when scraped (the api's search routes set it). */
  private lexicalPostings: (() => { bytes: number; tenants: number; reads: { memory: number; sql: number } }) | null = null;

  /** The api's search routes name what they hold; set again (routes built anew), the last one counts. */
  reportLexicalPostings(read: () => { bytes: number; tenants: number; reads: { memory: number; sql: number } }): void {
    this.lexicalPostings = read;
  }

  readonly lexicalMemoryBytes: Gauge = new Gauge({
    name: 'ragmesh_search_lexical_memory_bytes',
    help: "Estimated bytes of tenants' postings this api holds in memory for the lexical leg (SEARCH_LEXICAL_MEMORY_MB)",
    registers: [this.registry],
    collect: () => this.lexicalMemoryBytes.set(this.lexicalPostings?.().bytes ?? 0),
  });

  readonly lexicalMemoryTenants: Gauge = new Gauge({
    name: 'ragmesh_search_lexical_memory_tenants',
    help: 'Tenants whose postings this api holds in memory',
    registers: [this.registry],
    collect: () => this.lexicalMemoryTenants.set(this.lexicalPostings?.().tenants ?? 0),
  });

  readonly lexicalReads: Counter<'source'> = new Counter({
    name: 'ragmesh_search_lexical_reads_total',
    help: 'Plain-word lexical legs by where their postings were read: memory, or sql (not held, or changed since they were built)',
    labelNames: ['source'] as const,
    registers: [this.registry],
    collect: () => {
      const reads = this.lexicalPostings?.().reads;
      this.lexicalReads.reset();
      if (reads) for (const source of ['memory', 'sql'] as const) this.lexicalReads.inc({ source }, reads[source]);
    },
  });

  constructor(labels: { service: string }) {
    // `service` tells apart processes of one image (SERVICES); Prometheus adds instance/job.
    this.registry.setDefaultLabels(labels);
    // The event loop delay is sampled every 100 ms, not prom-client's default 10 ms: at
    // 10 ms the sampling alone cost 4-8 % more CPU per request on the gateway (bench:metrics,
    // everything else on: +4.3 %, +4.8 %; default metrics off: -0.2 %; at 100 ms: -0.8 %),
    // and 100 ms is still finer than any lag an alert looks at.
    collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: 100 });
  }

  /** A gauge whose value is read when Prometheus scrapes (queue depth, job counts…). */
  gaugeFromScrape<L extends string>(
    name: string,
    help: string,
    labelNames: readonly L[],
    read: () => Promise<Array<{ labels: Record<L, string>; value: number }>>,
  ): Gauge<L> {
    return new Gauge<L>({
      name,
      help,
      labelNames,
      registers: [this.registry],
      async collect() {
        const values = await read();
        this.reset();
        for (const v of values) this.set(v.labels, v.value);
      },
    });
  }

  /** A counter kept elsewhere as a running total, copied in when Prometheus scrapes. */
  counterFromScrape<L extends string>(
    name: string,
    help: string,
    labelNames: readonly L[],
    read: () => Array<{ labels: Record<L, string>; value: number }>,
  ): Counter<L> {
    return new Counter<L>({
      name,
      help,
      labelNames,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const v of read()) this.inc(v.labels, v.value);
      },
    });
  }

  /** Text exposition format for GET /metrics. */
  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }

  /** Starts a timer; the returned function records seconds since the start. */
  static since(start = process.hrtime.bigint()): () => number {
    return () => Number(process.hrtime.bigint() - start) / 1e9;
  }
}
