import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { readdir } from 'node:fs/promises';
import type { ObjectStore } from '../../ports/object-store.ts';
import { tempDir } from '../../../test/support/services.ts';
import { startS3Server } from '../../../test/support/s3-server.ts';
import { FsObjectStore } from './fs.ts';
import { S3ObjectStore } from './s3.ts';

async function collect(iterable: AsyncIterable<{ key: string }>): Promise<string[]> {
  const keys: string[] = [];
  for await (const item of iterable) keys.push(item.key);
  return keys;
}

function objectStoreContract(name: string, open: () => Promise<{ store: ObjectStore; dispose(): Promise<void> }>) {
  describe(`ObjectStore contract: ${name}`, () => {
    let store: ObjectStore;
    let dispose: () => Promise<void>;
    before(async () => {
      ({ store, dispose } = await open());
      await store.ensureBucket();
      await store.ensureBucket(); // idempotent
    });
    after(() => dispose());

    it('round-trips a buffer and a stream, with sizes', async () => {
      const small = Buffer.from('привет, ragmesh');
      const info = await store.put('tenants/a/doc.txt', small, { contentType: 'text/plain' });
      assert.equal(info.size, small.length);
      assert.deepEqual(await buffer(await store.get('tenants/a/doc.txt')), small);

      const big = Buffer.alloc(3 * 1024 * 1024, 7);
      const streamed = await store.put('tenants/a/big.bin', Readable.from([big.subarray(0, 1e6), big.subarray(1e6)]), { size: big.length });
      assert.equal(streamed.size, big.length);
      const unknownLength = await store.put('tenants/a/unknown.bin', Readable.from([big.subarray(0, 5e5), big.subarray(5e5, 2e6)]));
      assert.equal(unknownLength.size, 2e6);
      assert.ok((await buffer(await store.get('tenants/a/unknown.bin'))).equals(big.subarray(0, 2e6)));
      const smallUnknown = await store.put('tenants/a/small.bin', Readable.from([small]));
      assert.equal(smallUnknown.size, small.length);
      assert.equal((await store.stat('tenants/a/big.bin'))?.size, big.length);
      assert.ok((await buffer(await store.get('tenants/a/big.bin'))).equals(big));
    });

    it('overwrites, lists by prefix, deletes', async () => {
      await store.put('tenants/b/1.txt', Buffer.from('one'));
      await store.put('tenants/b/1.txt', Buffer.from('uno'));
      await store.put('tenants/b/sub/2.txt', Buffer.from('two'));
      await store.put('tenants/bb/3.txt', Buffer.from('three'));
      assert.equal((await buffer(await store.get('tenants/b/1.txt'))).toString(), 'uno');
      assert.deepEqual(await collect(store.list('tenants/b/')), ['tenants/b/1.txt', 'tenants/b/sub/2.txt']);
      await store.delete('tenants/b/1.txt');
      await store.delete('tenants/b/never-existed.txt');
      assert.equal(await store.stat('tenants/b/1.txt'), null);
      assert.deepEqual(await collect(store.list('tenants/b/')), ['tenants/b/sub/2.txt']);
    });

    it('reads a whole object into a buffer it fits, and says when it does not fit', async () => {
      const body = Buffer.from('a backup reuses this buffer');
      await store.put('tenants/r/into.txt', body);
      const into = Buffer.alloc(64, 0xff);
      assert.equal(await store.readInto('tenants/r/into.txt', into), body.length);
      assert.ok(into.subarray(0, body.length).equals(body));
      const exact = Buffer.alloc(body.length);
      assert.equal(await store.readInto('tenants/r/into.txt', exact), body.length);
      assert.ok(exact.equals(body));
      assert.equal(await store.readInto('tenants/r/into.txt', Buffer.alloc(body.length - 1)), null);
      const big = Buffer.alloc(3 * 1024 * 1024, 9);
      await store.put('tenants/r/big.bin', big);
      assert.equal(await store.readInto('tenants/r/big.bin', Buffer.alloc(1024 * 1024)), null);
      const whole = Buffer.alloc(4 * 1024 * 1024);
      assert.equal(await store.readInto('tenants/r/big.bin', whole), big.length);
      assert.ok(whole.subarray(0, big.length).equals(big));
      await store.put('tenants/r/empty', Buffer.alloc(0));
      assert.equal(await store.readInto('tenants/r/empty', Buffer.alloc(8)), 0);
    });

    it('answers a missing object with OBJECT_NOT_FOUND', async () => {
      await assert.rejects(() => store.get('tenants/none/x'), { code: 404, type: 'OBJECT_NOT_FOUND' });
      await assert.rejects(() => store.readInto('tenants/none/x', Buffer.alloc(8)), { code: 404, type: 'OBJECT_NOT_FOUND' });
      assert.equal(await store.stat('tenants/none/x'), null);
    });

    it('refuses keys that try to leave the bucket', async () => {
      for (const key of ['../../etc/passwd', '/abs/path', 'a/../b', 'a//b', 'a/./b', 'with space', 'nul\u0000byte', '', 'x'.repeat(600)]) {
        await assert.rejects(() => store.put(key, Buffer.from('x')), { code: 400, type: 'INVALID_OBJECT_KEY' }, `key ${JSON.stringify(key)}`);
        await assert.rejects(() => store.get(key), { code: 400, type: 'INVALID_OBJECT_KEY' });
      }
    });

    it('answers ping', async () => {
      await store.ping();
    });
  });
}

describe('S3ObjectStore presigned PUT', () => {
  it('gives a URL a client can upload to without credentials', async () => {
    const server = await startS3Server();
    try {
      const store = new S3ObjectStore(server.config, 'presign-test');
      await store.ensureBucket();
      const url = await store.presignPut('tenants/a/uploads/u1', 60);
      assert.ok(url?.startsWith(server.endpoint));
      const res = await fetch(url!, { method: 'PUT', body: 'uploaded directly' });
      assert.equal(res.status, 200);
      assert.equal((await buffer(await store.get('tenants/a/uploads/u1'))).toString(), 'uploaded directly');
    } finally {
      await server.stop();
    }
  });
});

objectStoreContract('fs', async () => {
  const dir = await tempDir();
  return { store: new FsObjectStore(dir.value, 'ragmesh'), dispose: dir.dispose };
});

objectStoreContract('s3 (S3-compatible server)', async () => {
  const server = await startS3Server();
  return { store: new S3ObjectStore(server.config, 'ragmesh-test'), dispose: server.stop };
});

describe('FsObjectStore', () => {
  it('leaves no partial file when the upload stream fails', async () => {
    const dir = await tempDir();
    try {
      const store = new FsObjectStore(dir.value, 'b');
      await store.ensureBucket();
      const failing = new Readable({
        read() {
          this.push(Buffer.alloc(1024));
          this.destroy(new Error('client went away'));
        },
      });
      await assert.rejects(() => store.put('x/y.bin', failing), /client went away/);
      assert.equal(await store.stat('x/y.bin'), null);
      assert.deepEqual(await readdir(`${dir.value}/.tmp`), []);
    } finally {
      await dir.dispose();
    }
  });
});
