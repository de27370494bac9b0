import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { Metrics } from './metrics.ts';

interface RoutedRequest extends IncomingMessage {
  /** Set by moleculer-web when a declared alias matched. */
  $alias?: { fullPath?: string };
}

/** The declared route of a request, never its URL (ids would explode the series). */
function routeOf(req: RoutedRequest): string {
  return req.$alias?.fullPath ?? 'unmatched';
}

/**
 * Times every response of an HTTP server by method, declared route and status, and
 * counts the Server-Sent Events streams open at scrape time. Listens on the server
 * beside the gateway's own handler, so routes need no code of their own.
 */
export function instrumentHttpServer(server: Server, metrics: Metrics): void {
  const open = new Set<ServerResponse>();
  server.prependListener('request', (req: RoutedRequest, res: ServerResponse) => {
    const elapsed = Metrics.since();
    open.add(res);
    res.once('close', () => {
      open.delete(res);
      metrics.httpDuration.observe({ method: req.method ?? 'OTHER', route: routeOf(req), status: String(res.statusCode) }, elapsed());
    });
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
