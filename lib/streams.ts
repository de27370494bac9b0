import type { Readable } from 'node:stream';

/**
 * The one reader of ragmesh's line protocols: Server-Sent Events (the api's answers and
 * job updates, read by tests, the smoke script and benches; an upstream OpenAI-compatible
 * server's chat stream, read by lib/llm/openai.ts) and NDJSON (the llm service's token
 * stream over the transporter).
 */

export interface SseEvent {
  /** `message` when the block names no event. */
  event: string;
  /** The data lines joined; parsed JSON when it is JSON, else the text. */
  data: any;
}

/** One SSE block (between blank lines) as an event; null for comments and empty blocks. */
export function parseSseBlock(block: string): SseEvent | null {
  let event = 'message';
  const data: string[] = [];
  for (const line of block.split(/\r?\n/)) {
    if (line.startsWith(':') || line === '') continue;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
    if (field === 'event') event = value;
    else if (field === 'data') data.push(value);
  }
  if (data.length === 0) return null;
  const text = data.join('\n');
  try {
    return { event, data: JSON.parse(text) };
  } catch {
    return { event, data: text };
  }
}

/** Every event of a complete SSE text. */
export function parseSse(text: string): SseEvent[] {
  return text.split(/\r?\n\r?\n/).map(parseSseBlock).filter((e): e is SseEvent => e !== null);
}

/** Splits a byte or text stream into its lines' separated blocks as they arrive. */
async function* blocks(stream: AsyncIterable<Uint8Array | string>, separator: RegExp): AsyncIterable<string> {
  const decoder = new TextDecoder();
  let buffer = '';
  for await (const chunk of stream) {
    buffer += typeof chunk === 'string' ? chunk : decoder.decode(chunk, { stream: true });
    let match: RegExpExecArray | null;
    while ((match = separator.exec(buffer))) {
      yield buffer.slice(0, match.index);
      buffer = buffer.slice(match.index + match[0].length);
    }
  }
  if (buffer.trim()) yield buffer;
}

/** SSE events as they arrive on a stream (a fetch body, a Node response). */
export async function* sseEvents(stream: AsyncIterable<Uint8Array | string>): AsyncIterable<SseEvent> {
  for await (const block of blocks(stream, /\r?\n\r?\n/)) {
    const event = parseSseBlock(block);
    if (event) yield event;
  }
}

/** One JSON value per line, as they arrive; blank lines skipped. */
export async function* ndjson<T = any>(stream: AsyncIterable<Uint8Array | string | Buffer>): AsyncIterable<T> {
  for await (const line of blocks(stream as AsyncIterable<Uint8Array | string>, /\n/)) {
    if (line.trim()) yield JSON.parse(line) as T;
  }
}

/**
 * ndjson's lines handed to `each` in the 'data' event that brings them, not through async
 * iterators: the api reads the llm's answer this way, and the first token reaches the
 * client in the same turn as the message that carried it (the iterator chain — the
 * stream's, the line splitter's and ndjson's generators — took several promise hops and
 * a nextTick per chunk). `each` returning false stops: the stream is destroyed and the
 * promise resolves. Rejects as `for await` would: the stream's error, or a premature
 * close (destroyed before its end); and with what `each` or JSON.parse threw, the stream
 * destroyed.
 */
export function eachNdjson<T = any>(stream: Readable, each: (value: T) => boolean | void): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const prematureClose = () => Object.assign(new Error('Premature close'), { code: 'ERR_STREAM_PREMATURE_CLOSE' });
    if (stream.destroyed) return reject(stream.errored ?? prematureClose());
    const decoder = new TextDecoder();
    let buffer = '';
    let settled = false;
    const settle = (err?: unknown) => {
      if (settled) return;
      settled = true;
      stream.off('data', onData);
      stream.off('end', onEnd);
      stream.off('error', onError);
      stream.off('close', onClose);
      if (err === undefined) resolve();
      else reject(err);
    };
    /** The complete lines held (and at the end, what is left): false once `each` said stop. */
    const lines = (final: boolean): boolean => {
      let at: number;
      while ((at = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, at);
        buffer = buffer.slice(at + 1);
        if (line.trim() && each(JSON.parse(line) as T) === false) return false;
      }
      if (final && buffer.trim()) {
        const line = buffer;
        buffer = '';
        if (each(JSON.parse(line) as T) === false) return false;
      }
      return true;
    };
    const onData = (chunk: string | Uint8Array) => {
      buffer += typeof chunk === 'string' ? chunk : decoder.decode(chunk, { stream: true });
      let go: boolean;
      try {
        go = lines(false);
      } catch (err) {
        settle(err);
        stream.destroy();
        return;
      }
      if (!go) {
        settle();
        stream.destroy();
      }
    };
    const onEnd = () => {
      try {
        lines(true);
        settle();
      } catch (err) {
        settle(err);
      }
    };
    const onError = (err: Error) => settle(err);
    const onClose = () => settle(prematureClose());
    stream.on('data', onData);
    stream.on('end', onEnd);
    stream.on('error', onError);
    stream.on('close', onClose);
  });
}

/**
 * A stream's bytes as one Buffer. Unlike `buffer()` of node:stream/consumers, which
 * goes through a Blob and copies every byte twice more, a stream of one chunk (how the
 * object stores hand out small objects) comes back as that chunk, and several are
 * concatenated once: in a backup of 200 objects of 256 KiB the Blob route cost more
 * CPU than hashing them.
 */
export async function readAll(stream: AsyncIterable<Uint8Array | string>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
}
