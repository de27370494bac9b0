import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { HistogramChild } from './hot-histogram.ts';
import type { Metrics } from './metrics.ts';

interface RoutedRequest extends IncomingMessage {
  /** Set by moleculer-web when a declared alias matched. */
  $alias?: { fullPath?: string };
}

const STARTED = Symbol('ragmesh.metrics.started');
interface TimedResponse extends ServerResponse {
  [STARTED]: number;
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
 * This runs on every request, so it allocates nothing per request but the start time:
 * one shared 'close' listener (`this` is the response), the histogram child of each
 * (method, route, status) looked up in a map, never re-created.
 */
export function instrumentHttpServer(server: Server, metrics: Metrics): void {
  const open = new Set<ServerResponse>();
  const children = new Map<string, HistogramChild>();
  function closed(this: TimedResponse): void {
    open.delete(this);
    const req = this.req as RoutedRequest;
    const method = req.method ?? 'OTHER';
    const route = routeOf(req);
    const status = this.statusCode;
    // Bounded: Node's parser admits only known methods, routes are declared aliases.
    const key = `${method} ${status} ${route}`;
    let child = children.get(key);
    if (!child) {
      child = metrics.httpDuration.child({ method, route, status: String(status) });
      children.set(key, child);
    }
    child.observe((performance.now() - this[STARTED]) / 1000);
  }
  server.prependListener('request', (_req: IncomingMessage, res: ServerResponse) => {
    (res as TimedResponse)[STARTED] = performance.now();
    open.add(res);
    res.on('close', closed);
  });
  metrics.gaugeFromScrape('ragmesh_sse_streams_active', 'Server-Sent Events streams open on this api process, by route', ['route'], async () => {
    const byRoute = new Map<string, number>();
    for (const res of open) {
      if (!String(res.getHeader('content-type') ?? '').startsWith('text/event-stream')) continue;
      const route = routeOf(res.req as RoutedRequest);
      byRoute.set(route, (byRoute.get(route) ?? 0) + 1);
    }
    return [...byRoute].map(([route, value]) => ({ labels: { route }, value }));
  });
}
