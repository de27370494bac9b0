import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cgroupQuota, fastestThreads, readCpuBudget, StepCountChoice, ThreadDrift, threadCandidates, usableCores } from './threads.ts';

describe('llama thread count for LLM_THREADS=0', () => {
  it('uses the CPUs of the affinity mask, within the cgroup quota rounded down, at least one', () => {
    assert.equal(usableCores({ parallelism: 8, quota: null, hostCpus: 8, loadAverage: 3 }), 8);
    assert.equal(usableCores({ parallelism: 64, quota: 2.5, hostCpus: 64, loadAverage: 8 }), 2);
    assert.equal(usableCores({ parallelism: 64, quota: 0.5, hostCpus: 64, loadAverage: 0 }), 1);
    assert.equal(usableCores({ parallelism: 2, quota: 4, hostCpus: 16, loadAverage: 0 }), 2);
  });

  it('times every count up to 4, then powers of two and all the cores', () => {
    assert.deepEqual(threadCandidates(1), [1]);
    assert.deepEqual(threadCandidates(2), [1, 2]);
    assert.deepEqual(threadCandidates(6), [1, 2, 3, 4, 6]);
    assert.deepEqual(threadCandidates(32), [1, 2, 3, 4, 8, 16, 32]);
    assert.deepEqual(threadCandidates(12), [1, 2, 3, 4, 8, 12]);
  });

  it('keeps the count with the lowest median trial, the fewer threads when within 3 %', () => {
    // The loaded 2-core machine of the issue: two threads spin against each other.
    assert.equal(fastestThreads(new Map([[1, [3912]], [2, [13261]]])), 1);
    assert.equal(fastestThreads(new Map([[1, [300, 290, 310]], [2, [160, 400, 170]]])), 2);
    assert.equal(fastestThreads(new Map([[1, [200]], [2, [195]], [4, []]])), 1);
    assert.throws(() => fastestThreads(new Map([[1, []]])));
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
    assert.ok(usableCores(budget) >= 1 && usableCores(budget) <= budget.parallelism);
  });
});

describe('thread count drift (LLM_THREADS=0)', () => {
  const options = { window: 3, factor: 2, minIntervalMs: 1000 };

  it('asks for a new timing when the last answers run over twice as slow as the trial, or twice as fast', () => {
    let now = 0;
    const slower = new ThreadDrift(40, options, () => now);
    now = 5000;
    assert.equal(slower.observe(90), false, 'one answer is not a drift');
    assert.equal(slower.observe(95), false);
    assert.equal(slower.observe(85), true);
    const faster = new ThreadDrift(100, options, () => now);
    now = 10_000;
    for (const ms of [45, 40]) assert.equal(faster.observe(ms), false);
    assert.equal(faster.observe(48), true);
  });

  it('leaves a count whose answers stay near its trial, or drift only by a few answers', () => {
    let now = 5000;
    const drift = new ThreadDrift(40, options, () => now);
    now = 10_000;
    for (const ms of [42, 75, 60, 38, 41, 200, 44]) assert.equal(drift.observe(ms), false, `${ms} ms`);
  });

  it('never times again sooner than minIntervalMs after the last timing, and starts over from the new trial', () => {
    let now = 0;
    const drift = new ThreadDrift(40, options, () => now);
    for (const ms of [100, 100, 100]) assert.equal(drift.observe(ms), false);
    now = 999;
    assert.equal(drift.observe(100), false);
    now = 1000;
    assert.equal(drift.observe(100), true);
    drift.reset(100);
    now = 1500;
    for (const ms of [100, 100, 100, 100]) assert.equal(drift.observe(ms), false, 'the new trial matches the answers');
    assert.equal(drift.observe(0), false, 'an answer with no decode time says nothing');
  });
});

describe("answers' step count (LLM_THREADS=0)", () => {
  const options = { window: 8, exploreEvery: 4, minRuns: 3, minRunSteps: 4, switchBelow: 0.97, dropAbove: 1.5 };
  /** Runs `answers` answers of 10 steps on the choice, each step taking what `msOn` says for its count; each answer's count. */
  const answer = (choice: StepCountChoice, answers: number, msOn: (threads: number) => number) => {
    const used: number[] = [];
    for (let a = 0; a < answers; a++) {
      choice.startRun();
      const threads = choice.next();
      used.push(threads);
      for (let i = 0; i < 10; i++) {
        assert.equal(choice.next(), threads, 'every step of a run on one count');
        choice.observe(threads, msOn(threads));
      }
    }
    choice.startRun(); // the next prompt ends the last run
    return used;
  };

  it('makes most answers on the count in use and one in `exploreEvery` on another, each answer on one count', () => {
    const choice = new StepCountChoice([1, 2], 2, options);
    const used = answer(choice, 16, (threads) => (threads === 2 ? 20 : 22));
    assert.deepEqual(used.slice(0, 8), [2, 2, 2, 1, 2, 2, 2, 1]);
    assert.equal(used.filter((t) => t === 1).length, 4);
    assert.equal(choice.current, 2, 'the other count is slower: the one in use stays');
    assert.deepEqual(choice.medians(), { 1: 22, 2: 20 });
  });

  it('moves to a count whose answers step faster, once both have enough answers, and says so', () => {
    const moves: unknown[] = [];
    const choice = new StepCountChoice([1, 2], 2, options, (event) => moves.push(event));
    const used = answer(choice, 24, (threads) => (threads === 1 ? 23 : 27));
    // Count 1 has its third answer at the 12th: from then on it serves, and 2 is the one explored.
    assert.equal(choice.current, 1);
    assert.deepEqual(moves, [{ from: 2, to: 1, stepMs: { 1: 23, 2: 27 } }]);
    assert.deepEqual(used.slice(12), [1, 1, 1, 2, 1, 1, 1, 2, 1, 1, 1, 2]);
  });

  it('keeps the count in use when the other is within `switchBelow` of it (no flapping on noise)', () => {
    const choice = new StepCountChoice([1, 2], 2, options);
    answer(choice, 40, (threads) => (threads === 1 ? 19.6 : 20));
    assert.equal(choice.current, 2);
  });

  it('stops trying a count far slower than the one in use, until the counts are timed again', () => {
    const choice = new StepCountChoice([1, 2], 1, options);
    const used = answer(choice, 40, (threads) => (threads === 2 ? 40 : 20));
    assert.equal(used.lastIndexOf(2), 11, 'tried in three answers, then left out');
    choice.restart([1, 2], 1);
    assert.deepEqual(choice.medians(), {});
    assert.ok(answer(choice, 4, () => 20).includes(2), 'tried again after a new trial');
  });

  it("goes by each answer's mean step, so a count whose answers stall now and then loses to a steady one", () => {
    const choice = new StepCountChoice([1, 2], 2, options);
    // 2 threads: most steps 18 ms, one in five 60 ms (mean 26.4); 1 thread: 23 ms every step.
    let step = 0;
    answer(choice, 24, (threads) => (threads === 1 ? 23 : ++step % 5 === 0 ? 60 : 18));
    assert.equal(choice.current, 1);
    assert.equal(choice.medians()[2], 26.4);
  });

  it('keeps no run of too few steps, and no step timed on another count than its run', () => {
    const choice = new StepCountChoice([1, 2], 2, options);
    choice.startRun();
    for (let i = 0; i < 3; i++) choice.observe(2, 20);
    choice.observe(1, 5);
    choice.startRun();
    assert.deepEqual(choice.medians(), {});
  });

  it('always keeps the count the trial picked, even when the trial kept no other', () => {
    const choice = new StepCountChoice([], 2, options);
    assert.deepEqual(answer(choice, 12, () => 10), Array(12).fill(2));
  });
});
