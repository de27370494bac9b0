import { readFileSync } from 'node:fs';
import os from 'node:os';

/** What the process may really run on, and how much of it other work already takes. */
export interface CpuBudget {
  /** CPUs this process may be scheduled on (affinity / cpuset): os.availableParallelism(). */
  parallelism: number;
  /** CPUs' worth of time the cgroup allows (cpu.max or cfs_quota/period); null = no quota. */
  quota: number | null;
  /** CPUs the host has (os.cpus()): load average is host-wide, so it is scaled to our share. */
  hostCpus: number;
  /** 1-minute load average of the host. */
  loadAverage: number;
}

export function readCpuBudget(): CpuBudget {
  return { parallelism: os.availableParallelism(), quota: cgroupQuota(), hostCpus: Math.max(1, os.cpus().length), loadAverage: os.loadavg()[0] ?? 0 };
}

/**
 * Threads for llama.cpp when LLM_THREADS=0. Its worker threads spin-wait for each
 * other at every step of every token, so one more thread than there is free CPU does
 * not slow generation a little, it stalls it: on a 2-core machine already loaded by
 * other processes, 2 threads made 60 tokens take 36 s and 1 thread 0.05 s. So:
 * the CPUs we may use (affinity, then the cgroup quota rounded down), minus the load
 * other work puts on them (the host's load average scaled to our share of its
 * CPUs), never fewer than one.
 */
export function pickThreads(budget: CpuBudget): number {
  const cores = Math.max(1, Math.min(budget.parallelism, budget.quota === null ? Infinity : Math.floor(budget.quota)));
  const busy = budget.loadAverage * Math.min(1, cores / budget.hostCpus);
  return Math.max(1, Math.min(cores, Math.floor(cores - busy + 0.25)));
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
