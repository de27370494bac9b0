import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AdaptiveDeadline } from './deadline.ts';

describe('AdaptiveDeadline', () => {
  it('waits the ceiling until it has seen enough successes', () => {
    const d = new AdaptiveDeadline({ floorMs: 400, ceilingMs: 2000, minSamples: 5 });
    for (let i = 0; i < 4; i++) d.observe(10);
    assert.equal(d.ms, 2000);
    d.observe(10);
    assert.equal(d.ms, 400, 'fast calls: the floor');
  });

  it('follows the p95 of recent successes, between floor and ceiling', () => {
    const d = new AdaptiveDeadline({ floorMs: 400, ceilingMs: 2000, factor: 5, minSamples: 5, window: 20 });
    for (let i = 0; i < 20; i++) d.observe(i === 19 ? 150 : 120);
    assert.equal(d.ms, 750, '5 × p95 (150 ms)');
    for (let i = 0; i < 20; i++) d.observe(900);
    assert.equal(d.ms, 2000, 'a slow machine: capped at the ceiling');
    for (let i = 0; i < 20; i++) d.observe(20);
    assert.equal(d.ms, 400, 'old samples leave the window');
  });

  it('by default needs five successes, then follows the slowest of so few', () => {
    const d = new AdaptiveDeadline({ floorMs: 400, ceilingMs: 2000 });
    for (let i = 0; i < 4; i++) d.observe(30);
    assert.equal(d.ms, 2000, 'a cold process waits the ceiling');
    d.observe(120);
    assert.equal(d.ms, 600, '5 × the slowest of five (120 ms)');
  });
});
