/** The REST API as the browser sees it: the token from the tab's session, errors as ApiError. */
const TOKEN_KEY = 'ragmesh.token';

export class ApiError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
  }
}

export const session = {
  get token(): string | null {
    return sessionStorage.getItem(TOKEN_KEY);
  },
  set(token: string): void {
    sessionStorage.setItem(TOKEN_KEY, token);
  },
  clear(): void {
    sessionStorage.removeItem(TOKEN_KEY);
  },
};

function headers(extra: Record<string, string> = {}): Record<string, string> {
  const token = session.token;
  return { ...(token ? { Authorization: `Bearer ${token}` } : {}), ...extra };
}

/** A write refused because the deployment is in maintenance mode shows the banner, whoever the user is. */
function noticed(err: ApiError): ApiError {
  if (err.code === 'MAINTENANCE') window.dispatchEvent(new CustomEvent('ragmesh:maintenance', { detail: err.message }));
  return err;
}

async function failure(res: Response): Promise<ApiError> {
  const body = (await res.json().catch(() => null)) as { error?: { code?: string; message?: string } } | null;
  return new ApiError(res.status, body?.error?.code ?? `HTTP_${res.status}`, body?.error?.message ?? res.statusText);
}

/** A JSON call under /api/v1; a 401 signs the tab out. */
export async function api<T = unknown>(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
  const res = await fetch(`/api/v1/${path}`, {
    method,
    headers: headers(body === undefined ? {} : { 'Content-Type': 'application/json' }),
    body: body === undefined ? undefined : JSON.stringify(body),
    signal,
  });
  if (res.status === 401 && session.token) {
    session.clear();
    window.dispatchEvent(new Event('ragmesh:signed-out'));
  }
  if (!res.ok) throw noticed(await failure(res));
  const text = await res.text();
  return (text ? JSON.parse(text) : null) as T;
}

/** The same call, answering null for a route this server does not have (a feature not deployed). */
export async function optional<T>(method: string, path: string, body?: unknown): Promise<T | null> {
  try {
    return await api<T>(method, path, body);
  } catch (err) {
    if (err instanceof ApiError && (err.status === 404 || err.status === 405 || err.status === 501) && /NOT_FOUND|ROUTE|HTTP_40[45]|NOT_IMPLEMENTED/.test(err.code)) return null;
    throw err;
  }
}

export interface SseEvent {
  event: string;
  data: unknown;
}

/**
 * Server-sent events over fetch, so the token goes in a header (EventSource can only
 * put it in the URL) and aborting the signal really closes the connection, which the
 * server turns into an abort of the generation upstream.
 */
export async function streamEvents(method: string, path: string, body: unknown, onEvent: (e: SseEvent) => void, signal: AbortSignal): Promise<void> {
  const res = await fetch(`/api/v1/${path}`, {
    method,
    headers: headers({ Accept: 'text/event-stream', ...(body === undefined ? {} : { 'Content-Type': 'application/json' }) }),
    body: body === undefined ? undefined : JSON.stringify(body),
    signal,
  });
  if (!res.ok || !res.body) throw noticed(await failure(res));
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end: number;
    while ((end = buffer.search(/\r?\n\r?\n/)) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end).replace(/^\r?\n\r?\n/, '');
      let event = 'message';
      const data: string[] = [];
      for (const line of block.split(/\r?\n/)) {
        if (line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        const val = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
        if (field === 'event') event = val;
        else if (field === 'data') data.push(val);
      }
      if (!data.length) continue;
      const raw = data.join('\n');
      let parsed: unknown = raw;
      try {
        parsed = JSON.parse(raw);
      } catch {
        /* plain text data */
      }
      onEvent({ event, data: parsed });
    }
  }
}

/** One file's multipart upload, with byte progress (fetch has no upload progress; XHR does). */
export function uploadFile(file: File, fields: Record<string, string>, onProgress: (fraction: number) => void): Promise<UploadResult> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', '/api/v1/documents');
    const token = session.token;
    if (token) xhr.setRequestHeader('Authorization', `Bearer ${token}`);
    xhr.upload.onprogress = (e) => e.lengthComputable && onProgress(e.loaded / e.total);
    xhr.onload = () => {
      let body: { error?: { code?: string; message?: string } } & UploadResult;
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        reject(new ApiError(xhr.status, `HTTP_${xhr.status}`, xhr.statusText));
        return;
      }
      if (xhr.status >= 400) reject(noticed(new ApiError(xhr.status, body.error?.code ?? `HTTP_${xhr.status}`, body.error?.message ?? xhr.statusText)));
      else {
        onProgress(1);
        resolve(body);
      }
    };
    xhr.onerror = () => reject(new ApiError(0, 'NETWORK', 'Network error'));
    const form = new FormData();
    for (const [k, v] of Object.entries(fields)) if (v) form.append(k, v);
    form.append('file', file, file.name);
    xhr.send(form);
  });
}

export interface Job {
  id: string;
  type?: string;
  documentId: string | null;
  status: string;
  step: string | null;
  progress: number;
  attempts: number;
  error: string | null;
  errorCode: string | null;
  createdAt: string;
  updatedAt: string;
}

export interface DocumentView {
  id: string;
  sourceId: string;
  title: string | null;
  filename: string | null;
  mime: string | null;
  status: string;
  tags: string[];
  lang?: string | null;
  pageCount?: number | null;
  version?: number;
  createdAt: string;
  updatedAt: string;
  job?: Job | null;
}

export interface UploadResult {
  document: DocumentView;
  job: Job;
  duplicate: boolean;
  analysis?: Job | null;
}

export interface Me {
  tenantId: string;
  userId: string;
  roles: string[];
}
