import type { BrokerOptions } from 'moleculer';
import type { Config } from './lib/config/env.ts';
import type { ActionMetrics } from './lib/metrics/action-timer.ts';
import { pinoOptions } from './lib/logging.ts';
import { requestContextMiddleware } from './lib/runtime/context-middleware.ts';
import { callLoggingMiddleware } from './lib/runtime/call-logging-middleware.ts';
import { applyMolEnvOverrides } from './lib/runtime/mol-env.ts';
import { CORKED_AMQP } from './lib/runtime/amqp-transporter.ts';

/**
 * Broker options for any process of ragmesh, built from the validated config. The
 * same file serves the embedded profile (no transporter) and the mesh (AMQP).
 * MOL_* variables (read with the rest by lib/config/env.ts) override any option here
 * the way moleculer-runner does. `metrics`: the process's action metrics, recorded by the
 * call-logging middleware (none when METRICS=false).
 */
export function brokerOptions(config: Config, metrics?: ActionMetrics): BrokerOptions {
  const options: BrokerOptions = {
    namespace: config.namespace,
    nodeID: config.nodeId ?? undefined,
    transporter: config.transporter
      ? {
          // Moleculer's AMQP transporter, writing each batch of frames in one socket write.
          type: CORKED_AMQP,
          options: {
            url: config.transporter,
            // Without TCP_NODELAY small request/response frames wait on Nagle's
            // algorithm: measured 22 calls/s vs ~2,000 calls/s between two processes.
            socketOptions: { noDelay: true },
            eventTimeToLive: 5000,
            heartbeatTimeToLive: 5000,
          },
          // socketOptions is passed to amqplib but missing from Moleculer's .d.ts.
        } as unknown as BrokerOptions['transporter']
      : null,
    serializer: 'JSON',
    requestTimeout: config.requestTimeoutMs,
    retryPolicy: { enabled: false },
    heartbeatInterval: 5,
    heartbeatTimeout: 15,
    registry: { strategy: 'RoundRobin', preferLocal: true },
    logger: {
      type: 'Pino',
      options: {
        level: config.logLevel,
        pino: { options: pinoOptions(config.logLevel) },
      },
    },
    logLevel: config.logLevel,
    // Moleculer wraps later middlewares around earlier ones: the request context must be
    // outermost so call logs carry the request id.
    middlewares: [callLoggingMiddleware(metrics), requestContextMiddleware],
    metrics: { enabled: false },
    tracing: { enabled: false },
  };
  return applyMolEnvOverrides(options as Record<string, unknown>, config.moleculerOverrides) as BrokerOptions;
}
