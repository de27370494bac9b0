import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Readable } from 'node:stream';
import { createHash } from 'node:crypto';
import { FsObjectStore } from '../../lib/adapters/objects/fs.ts';
import { tempDir } from '../../test/support/services.ts';
import { parseFields, safeFilename, storeStream } from './uploads.ts';

describe('upload helpers', () => {
  it('keeps only the last segment of a file name, without control characters', () => {
    assert.equal(safeFilename('../../etc/passwd'), 'passwd');
    assert.equal(safeFilename('C:\\Users\\x\\report.pdf'), 'report.pdf');
    assert.equal(safeFilename('a\u0000b\u001f.txt'), 'ab.txt');
    assert.equal(safeFilename('..'), null);
    assert.equal(safeFilename(undefined), null);
    assert.equal(safeFilename('я'.repeat(300))!.length, 255);
  });

  it('validates source ids and tags, and refuses the rest with a code', () => {
    assert.deepEqual(parseFields({ source_id: 'wiki/hr/отпуск', tags: 'hr, policy,hr' }), { sourceId: 'wiki/hr/отпуск', tags: ['hr', 'policy'] });
    assert.deepEqual(parseFields({ tags: ['a', 'b'] }), { tags: ['a', 'b'] });
    assert.throws(() => parseFields({ source_id: "x'; drop table documents; --" }), { code: 400, type: 'INVALID_SOURCE_ID' });
    assert.throws(() => parseFields({ tags: '<script>' }), { code: 400, type: 'INVALID_TAGS' });
    assert.throws(() => parseFields({ tags: Array.from({ length: 40 }, (_, i) => `t${i}`) }), { code: 400, type: 'INVALID_TAGS' });
  });

  it('streams into the store while hashing, and removes an object that grew past the limit', async () => {
    const dir = await tempDir();
    try {
      const store = new FsObjectStore(dir.value, 'b');
      await store.ensureBucket();
      const body = Buffer.alloc(200_000, 'x');
      const stored = await storeStream(store, 'k/ok', Readable.from([body.subarray(0, 70_000), body.subarray(70_000)]), 1_000_000);
      assert.equal(stored.sizeBytes, body.length);
      assert.equal(stored.sha256, createHash('sha256').update(body).digest('hex'));
      assert.equal(stored.head.length, 64 * 1024);
      await assert.rejects(() => storeStream(store, 'k/big', Readable.from([body]), 100_000), { code: 413, type: 'FILE_TOO_LARGE' });
      assert.equal(await store.stat('k/big'), null);
    } finally {
      await dir.dispose();
    }
  });
});
