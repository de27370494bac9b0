import assert from 'node:assert/strict';
import { PassThrough, Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { eachNdjson } from './streams.ts';

/** eachNdjson reads what `for await (… of ndjson(stream))` reads, and fails where it fails. */
describe('eachNdjson', () => {
  it('hands every line in order: split across chunks, blank lines skipped, a last line without its newline', async () => {
    const seen: unknown[] = [];
    await eachNdjson(Readable.from(['{"a":1}\n{"b"', ':2}\n\n', '{"c":"é"}'], { objectMode: true }), (v) => void seen.push(v));
    assert.deepEqual(seen, [{ a: 1 }, { b: 2 }, { c: 'é' }]);
  });

  it('reads bytes, a character split between chunks included', async () => {
    const bytes = Buffer.from('{"t":"жёлтый"}\n');
    const seen: unknown[] = [];
    await eachNdjson(Readable.from([bytes.subarray(0, 9), bytes.subarray(9)]), (v) => void seen.push(v));
    assert.deepEqual(seen, [{ t: 'жёлтый' }]);
  });

  it('stops when told to, destroying the stream', async () => {
    const stream = new PassThrough({ objectMode: true });
    const seen: unknown[] = [];
    const reading = eachNdjson<{ n: number }>(stream, (v) => {
      seen.push(v);
      return v.n < 2;
    });
    stream.write('{"n":1}\n{"n":2}\n{"n":3}\n');
    await reading;
    assert.deepEqual(seen, [{ n: 1 }, { n: 2 }]);
    assert.equal(stream.destroyed, true);
  });

  it('rejects with what the callback threw, and destroys the stream', async () => {
    const stream = new PassThrough({ objectMode: true });
    const reading = eachNdjson(stream, () => {
      throw new Error('refused');
    });
    stream.write('{}\n');
    await assert.rejects(reading, /refused/);
    assert.equal(stream.destroyed, true);
  });

  it("rejects with the stream's error, on a premature close, and on a stream already destroyed", async () => {
    const failing = new PassThrough({ objectMode: true });
    const a = eachNdjson(failing, () => undefined);
    failing.destroy(new Error('node went away'));
    await assert.rejects(a, /node went away/);

    const closed = new PassThrough({ objectMode: true });
    const b = eachNdjson(closed, () => undefined);
    closed.destroy();
    await assert.rejects(b, (err: Error & { code?: string }) => err.code === 'ERR_STREAM_PREMATURE_CLOSE');

    await assert.rejects(eachNdjson(closed, () => undefined), (err: Error & { code?: string }) => err.code === 'ERR_STREAM_PREMATURE_CLOSE');
  });

  it('rejects on a line that is not JSON', async () => {
    await assert.rejects(eachNdjson(Readable.from(['{"a":1}\nnot json\n'], { objectMode: true }), () => undefined), SyntaxError);
  });
});
