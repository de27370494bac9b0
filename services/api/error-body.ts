import { Errors } from 'moleculer';

export interface ErrorResponse {
  status: number;
  retryAfterSeconds?: number;
  body: {
    error: { code: string; message: string; status: number; retryable: boolean; request_id?: string; details?: unknown };
  };
}

/** Moleculer's own failures that are the caller's fault or a capacity limit, by error name. */
const MOLECULER_STATUS: Record<string, { status: number; code: string }> = {
  ValidationError: { status: 422, code: 'VALIDATION_FAILED' },
  ServiceNotFoundError: { status: 503, code: 'SERVICE_UNAVAILABLE' },
  ServiceNotAvailableError: { status: 503, code: 'SERVICE_UNAVAILABLE' },
  RequestTimeoutError: { status: 504, code: 'UPSTREAM_TIMEOUT' },
  QueueIsFullError: { status: 503, code: 'OVERLOADED' },
  NotFoundError: { status: 404, code: 'ROUTE_NOT_FOUND' },
  PayloadTooLarge: { status: 413, code: 'PAYLOAD_TOO_LARGE' },
  UnAuthorizedError: { status: 401, code: 'INVALID_TOKEN' },
  ForbiddenError: { status: 403, code: 'FORBIDDEN' },
  BadRequestError: { status: 400, code: 'BAD_REQUEST' },
};

/**
 * The one JSON shape of every error the api sends: a stable `code` clients switch
 * on, a human message, and whether retrying can help. 5xx bodies never echo
 * internal messages: they may hold hostnames or SQL.
 */
export function errorBody(err: unknown, requestId?: string): ErrorResponse {
  const e = err as Errors.MoleculerError & { status?: number };
  const known = MOLECULER_STATUS[e?.name ?? ''];
  let status = typeof e?.code === 'number' && e.code >= 400 && e.code < 600 ? e.code : (known?.status ?? 500);
  if (known && (e.name === 'ValidationError' || e.name === 'ServiceNotFoundError' || e.name === 'QueueIsFullError')) {
    status = known.status;
  }
  const fromType = typeof e?.type === 'string' && /^[A-Z][A-Z0-9_]+$/.test(e.type) ? e.type : undefined;
  const code = (e?.name === 'RagmeshError' ? fromType : undefined) ?? known?.code ?? fromType ?? (status >= 500 ? 'INTERNAL' : 'BAD_REQUEST');
  const retryable = Boolean(e?.retryable) || status === 503;
  const internal = status >= 500 && e?.name !== 'RagmeshError' && !known;
  const data = e?.data as { retryAfterSeconds?: number } | undefined;
  const retryAfterSeconds = status === 503 || status === 429 ? Math.max(1, Math.ceil(data?.retryAfterSeconds ?? 1)) : undefined;
  return {
    status,
    retryAfterSeconds,
    body: {
      error: {
        code,
        message: internal ? 'Internal error; the request id identifies it in the logs.' : String(e?.message ?? 'Error'),
        status,
        retryable,
        request_id: requestId,
        details: internal || e?.name !== 'ValidationError' ? undefined : e.data,
      },
    },
  };
}
