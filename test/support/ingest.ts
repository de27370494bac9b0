import { httpJson, type JsonResponse } from './http.ts';
import { waitFor } from './processes.ts';
import { sseEvents } from '../../lib/streams.ts';

export interface UploadFile {
  name: string;
  content: Buffer | string;
  type?: string;
}

/** POST /api/v1/documents as a browser form would send it. */
export async function upload(base: string, token: string, file: UploadFile, fields: Record<string, string> = {}): Promise<JsonResponse> {
  const form = new FormData();
  for (const [key, value] of Object.entries(fields)) form.append(key, value);
  const bytes = typeof file.content === 'string' ? Buffer.from(file.content) : file.content;
  form.append('file', new Blob([new Uint8Array(bytes)], { type: file.type ?? 'application/octet-stream' }), file.name);
  return httpJson(`${base}/api/v1/documents`, { method: 'POST', body: form, token });
}

export const TERMINAL = ['ready', 'failed', 'canceled'] as const;

/** Polls the job until it reaches one of `statuses`. */
export async function waitForJob(base: string, token: string, jobId: string, statuses: readonly string[] = TERMINAL, timeoutMs = 60_000) {
  return waitFor(`job ${jobId} to be ${statuses.join('/')}`, async () => {
    const res = await httpJson(`${base}/api/v1/jobs/${jobId}`, { token });
    return statuses.includes(res.body.status) ? res.body : null;
  }, timeoutMs);
}

export async function chunksOf(base: string, token: string, documentId: string): Promise<Array<{ id: string; text: string; page: number | null; lang: string; ord: number }>> {
  const res = await httpJson(`${base}/api/v1/documents/${documentId}/chunks`, { token });
  if (res.status !== 200) throw new Error(`chunks of ${documentId}: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body.items;
}

/** Reads an SSE response into events until `until` says stop (or the timeout). */
export async function readSse(
  url: string,
  token: string,
  until: (events: Array<{ event: string; data: any }>) => boolean,
  timeoutMs = 60_000,
): Promise<Array<{ event: string; data: any }>> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  const events: Array<{ event: string; data: any }> = [];
  try {
    const res = await fetch(url, { headers: { Authorization: `Bearer ${token}`, Accept: 'text/event-stream' }, signal: controller.signal });
    if (res.status !== 200) throw new Error(`SSE ${url}: ${res.status} ${await res.text()}`);
    for await (const event of sseEvents(res.body as unknown as AsyncIterable<Uint8Array>)) {
      events.push(event);
      if (until(events)) break;
    }
    return events;
  } finally {
    clearTimeout(timer);
    controller.abort();
  }
}
