import { createServer, type Server } from 'node:http';
import type { ServiceBroker } from 'moleculer';
import type { ServiceName } from '../config/env.ts';
import type { Metrics } from '../metrics/metrics.ts';
import type { Readiness } from './service-kit.ts';

/**
 * /healthz, /readyz and /metrics for a process without the api (emb, workers…), so Swarm and
 * any load balancer can probe every container the same way. Ready = every service
 * of this process reports ready on this node.
 */
export function startHealthServer(broker: ServiceBroker, services: ServiceName[], host: string, port: number, metrics?: Metrics): Promise<Server> {
  const server = createServer(async (req, res) => {
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8' });
      res.end(JSON.stringify(body));
    };
    if (req.method !== 'GET') return send(405, { error: { code: 'METHOD_NOT_ALLOWED' } });
    if (req.url === '/healthz') return send(200, { status: 'ok', nodeId: broker.nodeID });
    if (req.url === '/metrics' && metrics) {
      const { contentType, body } = await metrics.render();
      res.writeHead(200, { 'Content-Type': contentType });
      return res.end(body);
    }
    if (req.url === '/readyz') {
      const results = await Promise.all(
        services.map((name) =>
          (broker.call(`${name}.readiness`, {}, { nodeID: broker.nodeID }) as Promise<Readiness>).catch(
            (err: Error) => ({ service: name, nodeId: broker.nodeID, ready: false, checks: {}, error: err.message }),
          ),
        ),
      );
      const ready = results.every((r) => r.ready);
      return send(ready ? 200 : 503, { ready, services: results });
    }
    return send(404, { error: { code: 'ROUTE_NOT_FOUND' } });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve(server));
  });
}
