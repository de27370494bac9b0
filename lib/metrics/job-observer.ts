import { Metrics } from './metrics.ts';

/** The fields of a job update the observer needs (a JobRow or a JobView fits). */
export interface ObservedJob {
  id: string;
  type: string;
  status: string;
  step: string | null;
}

interface Tracked {
  stage: string | null;
  stageSince: () => number;
}

/**
 * Turns the job updates a worker publishes into stage durations and outcomes, so the
 * pipeline needs one call per update instead of timers around every step. It keeps
 * one entry per job running in this process (removed when the attempt ends), which
 * the worker's prefetch bounds.
 */
export class JobObserver {
  private readonly running = new Map<string, Tracked>();

  constructor(private readonly metrics: Metrics) {}

  observe(job: ObservedJob): void {
    let tracked = this.running.get(job.id);
    if (job.status === 'running') {
      if (!tracked) {
        tracked = { stage: job.step, stageSince: Metrics.since() };
        this.running.set(job.id, tracked);
        this.metrics.jobsStarted.inc({ type: job.type });
      } else if (job.step !== tracked.stage) {
        this.closeStage(job.type, tracked, 'ok');
        tracked.stage = job.step;
        tracked.stageSince = Metrics.since();
      }
      return;
    }
    if (!tracked) return;
    this.running.delete(job.id);
    // Back to queued from running = this attempt failed and will be retried.
    const outcome = job.status === 'queued' ? 'retry' : job.status;
    this.closeStage(job.type, tracked, outcome === 'ready' ? 'ok' : outcome);
    this.metrics.jobOutcomes.inc({ type: job.type, outcome });
  }

  /** Jobs this process is running now. */
  get size(): number {
    return this.running.size;
  }

  private closeStage(type: string, tracked: Tracked, outcome: string): void {
    if (tracked.stage === null) return;
    this.metrics.jobStageDuration.observe({ type, stage: tracked.stage, outcome }, tracked.stageSince());
  }
}
