import type { Server } from 'node:http';
import { ServiceBroker } from 'moleculer';
import type { Logger } from 'pino';
import { brokerOptions } from './moleculer.config.ts';
import { SERVICE_FACTORIES } from './services/index.ts';
import { resolveJwtSecret } from './lib/auth/jwt.ts';
import type { Config } from './lib/config/env.ts';
import { Metrics } from './lib/metrics/metrics.ts';
import { registerDependencyMetrics } from './lib/metrics/dependencies.ts';
import { registerModelMetrics } from './lib/metrics/models.ts';
import { startHealthServer } from './lib/runtime/health-server.ts';
import { storesNeededBy, type Runtime } from './lib/runtime/service-kit.ts';
import { Stores } from './lib/runtime/stores.ts';

export interface RunningNode {
  broker: ServiceBroker;
  stores: Stores;
  runtime: Runtime;
  metrics: Metrics | undefined;
  /** The api's or health server's HTTP address, when this process has one. */
  httpPort: number | null;
  stop(): Promise<void>;
}

/**
 * Starts one ragmesh node: opens the stores its services need (running migrations),
 * then the broker with those services. main.ts and the tests boot the same way.
 */
export async function bootNode(config: Config, logger: Logger): Promise<RunningNode> {
  const stores = new Stores(config, logger);
  const needed = [...new Set(config.services.flatMap((s) => storesNeededBy(s, config)))];
  try {
    await Promise.all(needed.map((name) => stores[name]()));
  } catch (err) {
    await stores.close();
    throw err;
  }

  const metrics = config.metrics ? new Metrics({ service: config.services.join(',') }) : undefined;
  if (metrics) {
    registerModelMetrics(metrics);
    registerDependencyMetrics(metrics);
  }
  const runtime: Runtime = {
    config,
    stores,
    logger,
    jwtSecret: config.services.includes('api') ? await resolveJwtSecret(config) : '',
    metrics,
  };
  const options = brokerOptions(config, metrics);
  const broker = new ServiceBroker(options);
  for (const name of config.services) broker.createService(SERVICE_FACTORIES[name](runtime));
  try {
    await broker.start();
  } catch (err) {
    await broker.stop().catch(() => undefined);
    await stores.close();
    throw err;
  }

  let healthServer: Server | null = null;
  let httpPort: number | null = null;
  if (config.services.includes('api')) {
    const api = broker.getLocalService('api') as unknown as { server: Server };
    httpPort = (api.server.address() as { port: number }).port;
  } else if (config.healthPort > 0) {
    healthServer = await startHealthServer(broker, config.services, config.http.host, config.healthPort, metrics);
    httpPort = config.healthPort;
  }

  return {
    broker,
    stores,
    runtime,
    metrics,
    httpPort,
    async stop() {
      healthServer?.close();
      await broker.stop().catch((err) => logger.error({ err }, 'broker stop failed'));
      await stores.close();
    },
  };
}
