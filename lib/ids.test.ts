import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isUuid, uuidFromParts } from './ids.ts';

describe('uuidFromParts', () => {
  it('gives the same valid UUID (version 8, RFC variant) for the same parts, and another for any other parts', () => {
    const a = uuidFromParts('chunk', 'acme', 'doc-1', 3, 0, 'abc');
    assert.equal(a, uuidFromParts('chunk', 'acme', 'doc-1', 3, 0, 'abc'));
    assert.ok(isUuid(a), a);
    assert.equal(a[14], '8');
    assert.match(a[19]!, /[89ab]/);
    const others = [
      uuidFromParts('chunk', 'acme', 'doc-1', 3, 1, 'abc'),
      uuidFromParts('chunk', 'acme', 'doc-1', 4, 0, 'abc'),
      uuidFromParts('chunk', 'acme', 'doc-1', 3, 0, 'abd'),
      uuidFromParts('chunk', 'other', 'doc-1', 3, 0, 'abc'),
      // Parts are kept apart: moving a boundary changes the id.
      uuidFromParts('chunk', 'acm', 'edoc-1', 3, 0, 'abc'),
    ];
    assert.equal(new Set([a, ...others]).size, others.length + 1);
  });
});
