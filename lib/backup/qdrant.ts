import { Readable } from 'node:stream';

/**
 * Qdrant's side of a backup, over its REST API: one snapshot per collection,
 * downloaded into the backup and removed from the server afterwards; restored by
 * uploading it with `priority=snapshot`.
 */
export class QdrantSnapshots {
  constructor(
    private readonly url: string,
    private readonly apiKey: string | null,
  ) {}

  async collections(): Promise<string[]> {
    const body = (await this.json('GET', '/collections')) as { result: { collections: Array<{ name: string }> } };
    return body.result.collections.map((c) => c.name).sort();
  }

  async snapshot(collection: string): Promise<{ stream: Readable; discard(): Promise<void> }> {
    const base = `/collections/${encodeURIComponent(collection)}/snapshots`;
    const created = (await this.json('POST', `${base}?wait=true`)) as { result: { name: string } };
    const name = encodeURIComponent(created.result.name);
    const res = await fetch(`${this.url}${base}/${name}`, { headers: this.headers() });
    if (!res.ok || !res.body) throw new Error(`Qdrant snapshot download of ${collection} answered ${res.status}`);
    return {
      stream: Readable.fromWeb(res.body as import('node:stream/web').ReadableStream),
      discard: async () => {
        await this.json('DELETE', `${base}/${name}?wait=true`);
      },
    };
  }

  async restore(collection: string, snapshot: Buffer): Promise<void> {
    const form = new FormData();
    form.append('snapshot', new Blob([new Uint8Array(snapshot)]), `${collection}.snapshot`);
    const res = await fetch(`${this.url}/collections/${encodeURIComponent(collection)}/snapshots/upload?priority=snapshot&wait=true`, {
      method: 'POST',
      headers: this.headers(),
      body: form,
    });
    if (!res.ok) throw new Error(`Qdrant snapshot upload of ${collection} answered ${res.status}: ${(await res.text()).slice(0, 300)}`);
  }

  private headers(): Record<string, string> {
    return this.apiKey ? { 'api-key': this.apiKey } : {};
  }

  private async json(method: string, pathAndQuery: string): Promise<unknown> {
    const res = await fetch(`${this.url}${pathAndQuery}`, { method, headers: this.headers() });
    if (!res.ok) throw new Error(`Qdrant ${method} ${pathAndQuery} answered ${res.status}: ${(await res.text()).slice(0, 300)}`);
    return res.json();
  }
}
