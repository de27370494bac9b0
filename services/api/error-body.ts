import { classify, type ErrorCode } from '../../lib/errors.ts';

export interface ErrorResponse {
  status: number;
  retryAfterSeconds?: number;
  body: {
    error: { code: ErrorCode; message: string; status: number; retryable: boolean; request_id?: string; details?: unknown };
  };
}

/**
 * The one JSON shape of every error the api sends: a stable `code` clients switch
 * on, a human message, and whether retrying can help — all as the error's origin
 * decided it (lib/errors.ts). Messages of errors that are not ours never reach the
 * client: they may hold hostnames or SQL.
 */
export function errorBody(err: unknown, requestId?: string): ErrorResponse {
  const { code, status, retryable, known } = classify(err);
  const e = err as { name?: string; message?: unknown; data?: unknown } | null | undefined;
  const data = e?.data as { retryAfterSeconds?: number } | undefined;
  const retryAfterSeconds = status === 503 || status === 429 ? Math.max(1, Math.ceil(data?.retryAfterSeconds ?? 1)) : undefined;
  return {
    status,
    retryAfterSeconds,
    body: {
      error: {
        code,
        message: known ? String(e?.message ?? 'Error') : 'Internal error; the request id identifies it in the logs.',
        status,
        retryable,
        request_id: requestId,
        details: e?.name === 'ValidationError' ? e.data : undefined,
      },
    },
  };
}
