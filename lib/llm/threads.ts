import { readFileSync } from 'node:fs';
import os from 'node:os';

/** What the process may really run on, and how much of it other work already takes. */
export interface CpuBudget {
  /** CPUs this process may be scheduled on (affinity / cpuset): os.availableParallelism(). */
  parallelism: number;
  /** CPUs' worth of time the cgroup allows (cpu.max or cfs_quota/period); null = no quota. */
  quota: number | null;
  /** CPUs the host has (os.cpus()). */
  hostCpus: number;
  /** 1-minute load average of the host: reported next to bench figures, not used to pick (see threadCandidates). */
  loadAverage: number;
}

export function readCpuBudget(): CpuBudget {
  return { parallelism: os.availableParallelism(), quota: cgroupQuota(), hostCpus: Math.max(1, os.cpus().length), loadAverage: os.loadavg()[0] ?? 0 };
}

/** The CPUs this process may run on: affinity/cpuset, then the cgroup quota rounded down; at least one. */
export function usableCores(budget: CpuBudget): number {
  return Math.max(1, Math.min(budget.parallelism, budget.quota === null ? Infinity : Math.floor(budget.quota)));
}

/**
 * Thread counts worth timing when LLM_THREADS=0: every count up to 4, beyond that the
 * powers of two and the usable cores themselves (at most a handful of trials).
 */
export function threadCandidates(cores: number): number[] {
  const counts = new Set<number>();
  for (let n = 1; n <= Math.min(cores, 4); n++) counts.add(n);
  for (let n = 8; n < cores; n *= 2) counts.add(n);
  counts.add(cores);
  return [...counts].sort((a, b) => a - b);
}

/**
 * The fastest count from timed trials (ms per trial, by count): lowest median wins;
 * within 3 % of it, the fewer threads (they leave the rest to other work).
 */
export function fastestThreads(trials: Map<number, number[]>): number {
  const medians = [...trials].filter(([, ms]) => ms.length > 0).map(([threads, ms]) => [threads, median(ms)] as const);
  if (medians.length === 0) throw new Error('no thread trial was timed');
  const best = Math.min(...medians.map(([, ms]) => ms));
  return Math.min(...medians.filter(([, ms]) => ms <= best * 1.03).map(([threads]) => threads));
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** The CPU quota of this process's cgroup (v2 `cpu.max`, or v1 `cpu.cfs_quota_us`/`cpu.cfs_period_us`). */
export function cgroupQuota(read: (file: string) => string | null = readOrNull): number | null {
  const groups = read('/proc/self/cgroup') ?? '';
  const quotas: number[] = [];
  for (const line of groups.split('\n')) {
    const [, controllers, where] = line.split(':');
    if (where === undefined) continue;
    if (controllers === '') {
      // cgroup v2: every ancestor's limit applies; the tightest wins.
      for (const dir of ancestors(where)) {
        const max = read(`/sys/fs/cgroup${dir}/cpu.max`)?.trim().split(/\s+/);
        if (max && max[0] !== 'max' && Number(max[1]) > 0) quotas.push(Number(max[0]) / Number(max[1]));
      }
    } else if (controllers!.split(',').includes('cpu')) {
      for (const dir of ancestors(where)) {
        for (const mount of ['/sys/fs/cgroup/cpu', '/sys/fs/cgroup/cpu,cpuacct']) {
          const quota = Number(read(`${mount}${dir}/cpu.cfs_quota_us`));
          const period = Number(read(`${mount}${dir}/cpu.cfs_period_us`));
          if (quota > 0 && period > 0) quotas.push(quota / period);
        }
      }
    }
  }
  return quotas.length > 0 ? Math.min(...quotas) : null;
}

function ancestors(where: string): string[] {
  const parts = where.split('/').filter(Boolean);
  return parts.map((_, i) => `/${parts.slice(0, i + 1).join('/')}`).concat(['']);
}

function readOrNull(file: string): string | null {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return null;
  }
}

export interface ThreadDriftOptions {
  /** Answers whose median is compared with the trial (the last ones since the count was timed). */
  window: number;
  /** Drift: the median ms per token over `factor` times the trial's, or under 1/`factor` of it. */
  factor: number;
  /** At least this long between two timings, however far the answers drift. */
  minIntervalMs: number;
}

export const THREAD_DRIFT: ThreadDriftOptions = { window: 5, factor: 2, minIntervalMs: 60_000 };

/**
 * Whether the thread count timed at load (LLM_THREADS=0) still fits the machine: the
 * decode milliseconds per token of the last answers against the trial's own at the count
 * in use. A count timed during a load spike (1 thread 1,566 ms, 2 threads 3,566 in one
 * trial) is then faster than its trial once the spike passes, and a count timed on a quiet
 * machine much slower once other work arrives: either way, far from the trial, the
 * counts are worth timing again. Fed by the answers; says when to re-time.
 */
export class ThreadDrift {
  private recent: number[] = [];
  private timedAt: number;

  constructor(
    private baselineMs: number,
    private readonly options: ThreadDriftOptions = THREAD_DRIFT,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.timedAt = now();
  }

  /** One answer's decode ms per token; true when the counts should be timed again. */
  observe(msPerToken: number): boolean {
    if (!(msPerToken > 0) || !(this.baselineMs > 0)) return false;
    this.recent.push(msPerToken);
    if (this.recent.length > this.options.window) this.recent.shift();
    if (this.recent.length < this.options.window || this.now() - this.timedAt < this.options.minIntervalMs) return false;
    const ratio = median(this.recent) / this.baselineMs;
    return ratio > this.options.factor || ratio < 1 / this.options.factor;
  }

  /** The trial's decode ms per token at the count in use. */
  get baseline(): number {
    return this.baselineMs;
  }

  /** Median decode ms per token of the last answers (0 before any). */
  get lastMedian(): number {
    return this.recent.length > 0 ? median(this.recent) : 0;
  }

  /** The counts were timed again: the new trial's ms per token at the count now in use. */
  reset(baselineMs: number): void {
    this.baselineMs = baselineMs;
    this.recent = [];
    this.timedAt = this.now();
  }
}

export interface StepChoiceOptions {
  /** Runs of steps (an answer's, mostly) kept per count: the choice goes by their median. */
  window: number;
  /** One run in this many makes its steps on another count than the one in use. */
  exploreEvery: number;
  /** Runs each count needs before the count in use can change. */
  minRuns: number;
  /** A run with fewer steps timed says too little: it is not kept. */
  minRunSteps: number;
  /** Another count takes over when its median run is under this fraction of the one in use. */
  switchBelow: number;
  /** A count whose median run is over this multiple of the one in use is not tried again (until the next trial). */
  dropAbove: number;
}

export const STEP_CHOICE: StepChoiceOptions = { window: 8, exploreEvery: 4, minRuns: 3, minRunSteps: 4, switchBelow: 0.97, dropAbove: 1.5 };

/**
 * The thread count an answer's steps (one token a batch) run on, chosen from the answers
 * themselves. Steps come in runs, one per answer (a prompt, several tokens a batch, starts
 * the next run): most runs make their steps on the count in use, one in `exploreEvery` on
 * another. Each step is timed from its decode to the next step's, so the answer's own work
 * between steps (sampling, detokenizing, streaming the token to its client: a core's
 * worth on the api, RabbitMQ and the client while llama.cpp decodes) counts as it does for
 * the asker. Each run's mean step is kept, and the count whose runs have the lowest median
 * serves; a count far slower than the one in use is left out until the counts are timed
 * again. The load-time trial cannot see that work: on 2 cores it picked 2 threads for
 * steps (18.4 against 21 ms) where answers streamed to a client made 36.8 tokens/s on 2
 * and 43 on 1 (docs/sse.md). Whole runs, not single steps among the others: a lone
 * 2-thread step between 1-thread ones timed 18 ms where runs of them made 32–41 tokens/s.
 */
export class StepCountChoice {
  /** Mean step ms of each of the last runs, by count. */
  private readonly runs = new Map<number, number[]>();
  private readonly dropped = new Set<number>();
  private inUse: number;
  private runsStarted = 0;
  private explored = 0;
  /** The run in progress: its count and the steps timed so far. */
  private run: { threads: number; steps: number[] } | null = null;

  constructor(
    candidates: number[],
    initial: number,
    private readonly options: StepChoiceOptions = STEP_CHOICE,
    /** The count in use changed (for the log). */
    private readonly onSwitch?: (event: { from: number; to: number; stepMs: Record<number, number> }) => void,
  ) {
    this.inUse = initial;
    this.restart(candidates, initial);
  }

  /** The counts were timed again: what answers showed before is forgotten. */
  restart(candidates: number[], initial: number): void {
    this.runs.clear();
    this.dropped.clear();
    this.run = null;
    // The count the trial picked is always one of them, whatever the others are.
    for (const threads of new Set([initial, ...candidates])) this.runs.set(threads, []);
    this.inUse = initial;
  }

  /** The count answers' steps run on, but for the exploring runs. */
  get current(): number {
    return this.inUse;
  }

  /** A prompt is read: the steps so far were one run, and the steps after it are the next. */
  startRun(): void {
    this.endRun();
    this.runsStarted++;
    const others = [...this.runs.keys()].filter((threads) => threads !== this.inUse && !this.dropped.has(threads));
    const explore = others.length > 0 && this.runsStarted % this.options.exploreEvery === 0;
    this.run = { threads: explore ? others[this.explored++ % others.length]! : this.inUse, steps: [] };
  }

  /** The count for the next step: its run's. */
  next(): number {
    return this.run?.threads ?? this.inUse;
  }

  /** A step on `threads` took `ms`, from its decode to the next step's. */
  observe(threads: number, ms: number): void {
    if (this.run?.threads === threads && ms > 0) this.run.steps.push(ms);
  }

  /** Median over the kept runs of their mean step ms, by count (counts with none left out). */
  medians(): Record<number, number> {
    return Object.fromEntries([...this.runs].filter(([, ms]) => ms.length > 0).map(([threads, ms]) => [threads, Math.round(median(ms) * 10) / 10]));
  }

  private endRun(): void {
    const run = this.run;
    this.run = null;
    const kept = run && this.runs.get(run.threads);
    if (!run || !kept || run.steps.length < this.options.minRunSteps) return;
    // The run's mean step, not its median: a few long steps (a stall while the answer's
    // streaming takes a core) are part of the answer's rate. Medians of 2-thread runs timed
    // 20 ms a step where their answers streamed 37–40 tokens a second.
    kept.push(run.steps.reduce((sum, ms) => sum + ms, 0) / run.steps.length);
    if (kept.length > this.options.window) kept.shift();
    const inUse = this.runs.get(this.inUse)!;
    if (run.threads === this.inUse || kept.length < this.options.minRuns || inUse.length < this.options.minRuns) return;
    const ratio = median(kept) / median(inUse);
    if (ratio < this.options.switchBelow) {
      const from = this.inUse;
      this.inUse = run.threads;
      this.dropped.clear();
      this.onSwitch?.({ from, to: run.threads, stepMs: this.medians() });
    } else if (ratio > this.options.dropAbove) this.dropped.add(run.threads);
  }
}
