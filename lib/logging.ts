import { AsyncLocalStorage } from 'node:async_hooks';
import { pino, type Logger, type LoggerOptions } from 'pino';

/**
 * What every log line of a request carries. A Moleculer middleware (lib/runtime/
 * context-middleware.ts) enters this context around each local action, so any code
 * that logs while serving a call — in any process the call reaches — gets the same
 * request_id without passing a logger around.
 */
export interface RequestContext {
  requestId: string;
  tenantId?: string;
  userId?: string;
}

export const requestContext = new AsyncLocalStorage<RequestContext>();

export function currentRequest(): RequestContext | undefined {
  return requestContext.getStore();
}

/** Pino options shared by Moleculer's logger and the plain boot/script logger. */
export function pinoOptions(level: string): LoggerOptions {
  return {
    level,
    base: { pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
    mixin() {
      const ctx = requestContext.getStore();
      if (!ctx) return {};
      return { request_id: ctx.requestId, tenant_id: ctx.tenantId, user_id: ctx.userId };
    },
    redact: { paths: ['*.authorization', '*.password', '*.secretKey', '*.jwtSecret'], censor: '[redacted]' },
  };
}

export function createLogger(level: string, bindings: Record<string, unknown> = {}): Logger {
  return pino(pinoOptions(level)).child(bindings);
}
