import type { IncomingMessage, ServerResponse } from 'node:http';

export interface SseStream {
  /** Sends one event; `data` is JSON-encoded. Returns false once the client is gone. */
  send(event: string, data: unknown): boolean;
  /** Writes what the stream holds now (headers and first events are held until the end of the turn they were sent in). */
  flush(): void;
  close(): void;
  /** Resolves when the client disconnects or close() is called. */
  readonly closed: Promise<void>;
  readonly isOpen: boolean;
}

/**
 * Opens a Server-Sent Events response: no buffering by nginx (X-Accel-Buffering), a
 * comment first so headers reach the client at once, a heartbeat comment every
 * `heartbeatMs` so idle proxies keep the connection.
 */
export function openSse(req: IncomingMessage, res: ServerResponse, options: { heartbeatMs?: number } = {}): SseStream {
  // Headers and the events sent in this turn of the event loop leave in one write, at
  // flush() or at the end of the turn, whichever comes first: when an answer's first
  // token came in the same read as the start of its stream, the client gets headers,
  // meta and the token together (Node would flush them on the next tick, before the
  // token is parsed). Later events are written as they come.
  const socket = res.socket;
  let held = false;
  const flush = () => {
    if (!held) return;
    held = false;
    // Node's own cork of a response write stays off while this one holds the socket.
    while (socket!.writableCorked > 0) socket!.uncork();
  };
  if (socket && !socket.destroyed) {
    held = true;
    socket.cork();
    setImmediate(flush);
  }
  res.writeHead(200, {
    'Content-Type': 'text/event-stream; charset=utf-8',
    'Cache-Control': 'no-cache, no-transform',
    Connection: 'keep-alive',
    'X-Accel-Buffering': 'no',
  });
  res.write(': ok\n\n');
  let open = true;
  let resolveClosed!: () => void;
  const closed = new Promise<void>((resolve) => (resolveClosed = resolve));
  const heartbeat = setInterval(() => open && res.write(': heartbeat\n\n'), options.heartbeatMs ?? 15_000);
  heartbeat.unref();
  const finish = () => {
    if (!open) return;
    open = false;
    clearInterval(heartbeat);
    resolveClosed();
  };
  req.on('close', finish);
  res.on('close', finish);
  return {
    send(event, data) {
      if (!open) return false;
      return res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`) || true;
    },
    flush,
    close() {
      if (open) res.end();
      finish();
    },
    closed,
    get isOpen() {
      return open;
    },
  };
}
