import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { HistogramChild } from './hot-histogram.ts';
import type { Metrics } from './metrics.ts';

interface RoutedRequest extends IncomingMessage {
  /** Set by moleculer-web when a declared alias matched. */
  $alias?: { method?: string; fullPath?: string };
  /** process.hrtime() taken by moleculer-web as its handler starts. */
  $startTime?: [number, number];
}


/** The declared route of a request, never its URL (ids would explode the series). */
function routeOf(req: RoutedRequest): string {
  return req.$alias?.fullPath ?? 'unmatched';
}

/**
 * Times every response of an HTTP server by method, declared route and status, and
 * counts the Server-Sent Events streams open at scrape time. Listens on the server
 * beside the gateway's own handler, so routes need no code of their own.
 *
 * This runs on every request, so it reads no clock at the start (moleculer-web's own
 * start time is used), shares one 'close' listener (`this` is the response), and finds
 * the histogram child of each (route, status) through moleculer-web's alias object and
 * the status number, never a key string built and hashed per request. Open responses are not tracked one
 * by one: the sockets are (a keep-alive connection carries many requests), and a scrape
 * asks each socket for the response it is writing.
 */
export function instrumentHttpServer(server: Server, metrics: Metrics): void {
  const sockets = new Set<Socket>();
  /** Children per alias (whose route and method are fixed), then per status code. */
  const byAlias = new WeakMap<object, Map<number, HistogramChild>>();
  /** Requests no declared alias matched (and an alias answering another method): by `METHOD status route`. */
  const others = new Map<string, HistogramChild>();
  const childOf = (req: RoutedRequest, status: number): HistogramChild => {
    const method = req.method ?? 'OTHER';
    const alias = req.$alias;
    if (alias && alias.method === method) {
      let byStatus = byAlias.get(alias);
      if (!byStatus) byAlias.set(alias, (byStatus = new Map()));
      let child = byStatus.get(status);
      if (!child) byStatus.set(status, (child = metrics.httpDuration.child({ method, route: routeOf(req), status: String(status) })));
      return child;
    }
    // Bounded: Node's parser admits only known methods, routes are declared aliases.
    const route = routeOf(req);
    const key = `${method} ${status} ${route}`;
    let child = others.get(key);
    if (!child) others.set(key, (child = metrics.httpDuration.child({ method, route, status: String(status) })));
    return child;
  };
  function closed(this: ServerResponse): void {
    const req = this.req as RoutedRequest;
    // moleculer-web's clock read as its handler starts (it runs right after this listener);
    // a second read of our own cost as much again per request. Absent: the gateway never saw it.
    const started = req.$startTime;
    if (started === undefined) return;
    const [seconds, nanos] = process.hrtime(started);
    childOf(req, this.statusCode).observe(seconds + nanos / 1e9);
  }
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  server.prependListener('request', (_req: IncomingMessage, res: ServerResponse) => {
    res.on('close', closed);
  });
  metrics.gaugeFromScrape('ragmesh_sse_streams_active', 'Server-Sent Events streams open on this api process, by route', ['route'], async () => {
    const byRoute = new Map<string, number>();
    for (const socket of sockets) {
      // The response a socket is writing (Node's own field; an event stream is always the
      // socket's current response, since nothing follows it on the connection).
      const res = (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage;
      if (!res || res.writableEnded || !String(res.getHeader('content-type') ?? '').startsWith('text/event-stream')) continue;
      const route = routeOf(res.req as RoutedRequest);
      byRoute.set(route, (byRoute.get(route) ?? 0) + 1);
    }
    return [...byRoute].map(([route, value]) => ({ labels: { route }, value }));
  });
}
