import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cgroupQuota, pickThreads, readCpuBudget } from './threads.ts';

describe('llama thread count for LLM_THREADS=0', () => {
  it('takes every core of an idle machine', () => {
    assert.equal(pickThreads({ parallelism: 8, quota: null, hostCpus: 8, loadAverage: 0.1 }), 8);
  });

  it('leaves the cores other work keeps busy, never fewer than one', () => {
    // The machine of the issue: 2 cores, load 3 from other processes.
    assert.equal(pickThreads({ parallelism: 2, quota: null, hostCpus: 2, loadAverage: 3 }), 1);
    assert.equal(pickThreads({ parallelism: 8, quota: null, hostCpus: 8, loadAverage: 3 }), 5);
  });

  it('obeys the cgroup quota, rounded down, and scales host load to its share', () => {
    // A container with 2.5 CPUs of quota (2 whole) on a 64-core host loaded with 8: ours carry 2/64 of it.
    assert.equal(pickThreads({ parallelism: 64, quota: 2.5, hostCpus: 64, loadAverage: 8 }), 2);
    assert.equal(pickThreads({ parallelism: 64, quota: 0.5, hostCpus: 64, loadAverage: 0 }), 1);
  });

  it('reads cgroup v2 cpu.max (tightest ancestor) and v1 cfs quota', () => {
    const v2: Record<string, string> = {
      '/proc/self/cgroup': '0::/kube/pod1/app\n',
      '/sys/fs/cgroup/kube/pod1/cpu.max': '300000 100000\n',
      '/sys/fs/cgroup/kube/pod1/app/cpu.max': 'max 100000\n',
    };
    assert.equal(cgroupQuota((f) => v2[f] ?? null), 3);
    const v1: Record<string, string> = {
      '/proc/self/cgroup': '4:memory:/x\n1:cpu,cpuacct:/docker/abc\n',
      '/sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us': '150000',
      '/sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_period_us': '100000',
    };
    assert.equal(cgroupQuota((f) => v1[f] ?? null), 1.5);
    assert.equal(cgroupQuota((f) => ({ '/proc/self/cgroup': '1:cpu:/\n', '/sys/fs/cgroup/cpu/cpu.cfs_quota_us': '-1', '/sys/fs/cgroup/cpu/cpu.cfs_period_us': '100000' })[f] ?? null), null);
  });

  it('reads this machine', () => {
    const budget = readCpuBudget();
    assert.ok(budget.parallelism >= 1);
    const threads = pickThreads(budget);
    assert.ok(threads >= 1 && threads <= budget.parallelism);
  });
});
