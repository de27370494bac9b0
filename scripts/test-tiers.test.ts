import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { unitTier } from './test-tiers.ts';

/** The unit tier is picked by what a test imports; a test that starts a node or a server must not land in it. */
describe('test tiers', () => {
  const unit = unitTier();

  it('keeps tests that boot a node in-process or open a database out of the unit tier', () => {
    for (const file of ['services/api/routes/search.test.ts', 'services/api/openapi.test.ts', 'lib/jobs/worker.test.ts', 'lib/models/reindex.test.ts', 'scripts/models.test.ts']) {
      assert.ok(!unit.includes(file), `${file} is in the unit tier`);
    }
  });

  it('holds the pure tests, itself included', () => {
    for (const file of ['lib/errors.test.ts', 'lib/boundary.test.ts', 'lib/extract/ocr-off.test.ts', 'scripts/test-tiers.test.ts']) assert.ok(unit.includes(file), `${file} is missing`);
  });
});
