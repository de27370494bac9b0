import { Errors } from 'moleculer';

/**
 * Every error that crosses a service boundary is a RagmeshError: an HTTP status
 * (`code`), a stable machine-readable `type` clients can switch on, optional
 * `data`, and whether a retry may succeed. Moleculer serialises `code`, `type`,
 * `data` and `retryable` over the transporter, so a caller in another process
 * sees the same error the callee threw.
 */
export class RagmeshError extends Errors.MoleculerError {
  constructor(message: string, status: number, type: string, data?: unknown, retryable = false) {
    super(message, status, type, data);
    this.name = 'RagmeshError';
    this.retryable = retryable;
  }
}

export const badRequest = (type: string, message: string, data?: unknown) =>
  new RagmeshError(message, 400, type, data);
export const unauthorized = (type: string, message: string) => new RagmeshError(message, 401, type);
export const forbidden = (type: string, message: string) => new RagmeshError(message, 403, type);
export const notFound = (type: string, message: string, data?: unknown) =>
  new RagmeshError(message, 404, type, data);
export const conflict = (type: string, message: string, data?: unknown) =>
  new RagmeshError(message, 409, type, data);
export const tooMany = (type: string, message: string, retryAfterSeconds: number) =>
  new RagmeshError(message, 429, type, { retryAfterSeconds }, true);
/** Capacity is exhausted right now; the api answers 503 with Retry-After. */
export const overloaded = (message: string, retryAfterSeconds = 1) =>
  new RagmeshError(message, 503, 'OVERLOADED', { retryAfterSeconds }, true);
export const unavailable = (type: string, message: string, data?: unknown) =>
  new RagmeshError(message, 503, type, data, true);

/** Raised at boot when the environment is invalid; lists every problem at once. */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}
