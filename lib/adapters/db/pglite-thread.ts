import { Worker } from 'node:worker_threads';

/**
 * PGlite on a thread of its own. PGlite is PostgreSQL compiled to WebAssembly: every
 * statement runs its parser, planner and executor, and then its JS protocol parsing
 * copies each field of each row out of WASM memory, on the thread that called it. In
 * the embedded profile that thread is also the api's: under search load PGlite was
 * ~58 % of the node's one busy thread (docs/search.md). Here (PGLITE_THREAD=worker) it runs beside it, so a
 * second core serves statements while the first serves HTTP, auth and the in-memory
 * BM25 sums. The rows come back by structured clone (a few µs for a search's rows).
 *
 * This is what knex-pglite and the backups use of a PGlite instance: `waitReady`,
 * `query`, `exec`, `dumpDataDir` and `close`.
 */
/**
 * A PGlite instance on the calling thread with the extensions the migrations need
 * (pgvector); loaded only when called so the mesh never pays for the WASM build.
 * `loadDataDir`: a tarball of a data directory to start from (a restore).
 */
export async function createPglite(dataDir: string, loadDataDir?: Blob) {
  const [{ PGlite }, { vector }] = await Promise.all([import('@electric-sql/pglite'), import('@electric-sql/pglite-pgvector')]);
  return PGlite.create({ dataDir, loadDataDir, extensions: { vector } });
}

export type Request =
  | { id: number; op: 'query'; sql: string; params?: unknown[]; options?: Record<string, unknown> }
  | { id: number; op: 'exec'; sql: string }
  | { id: number; op: 'dump'; compression?: 'gzip' | 'none' | 'auto' }
  | { id: number; op: 'close' };

export interface WireError {
  name: string;
  message: string;
  fields: Record<string, string | number | boolean | null>;
}

export type Reply = { id: number; ok: true; value: unknown } | { id: number; ok: false; error: WireError };

/** Rebuilt on this thread with the fields PostgreSQL gave it (code, detail, position…), as PGlite's own error has. */
function rebuild(error: WireError): Error {
  return Object.assign(new Error(error.message), error.fields, { name: error.name });
}

/** Only plain values cross threads: query options that are functions (parsers) are PGlite-side only and are not used here. */
function plainOptions(options: unknown): Record<string, unknown> | undefined {
  if (!options || typeof options !== 'object') return undefined;
  const plain = Object.fromEntries(Object.entries(options).filter(([, v]) => typeof v !== 'function'));
  return Object.keys(plain).length ? plain : undefined;
}

export class PgliteThread {
  readonly waitReady: Promise<void>;
  private readonly worker: Worker;
  private readonly pending = new Map<number, { resolve: (value: unknown) => void; reject: (err: unknown) => void }>();
  private nextId = 1;
  private failure: Error | null = null;

  static async open(dataDir: string): Promise<PgliteThread> {
    const thread = new PgliteThread(dataDir);
    await thread.waitReady;
    return thread;
  }

  private constructor(dataDir: string) {
    this.worker = new Worker(new URL('./pglite-worker.ts', import.meta.url), { workerData: { dataDir } });
    this.waitReady = new Promise<void>((resolve, reject) => {
      this.pending.set(0, { resolve: () => resolve(), reject });
    });
    this.worker.on('message', (reply: Reply) => {
      const waiter = this.pending.get(reply.id);
      if (!waiter) return;
      this.pending.delete(reply.id);
      // Referenced only while a statement is on it: an idle database does not keep the process alive, as in-process PGlite did not.
      if (this.pending.size === 0) this.worker.unref();
      if (reply.ok) waiter.resolve(reply.value);
      else waiter.reject(rebuild(reply.error));
    });
    const fail = (err: Error) => {
      this.failure ??= err;
      for (const waiter of this.pending.values()) waiter.reject(this.failure);
      this.pending.clear();
    };
    this.worker.on('error', fail);
    this.worker.on('exit', (code) => fail(new Error(`the embedded database's thread exited (code ${code})`)));
  }

  private call(request: Record<string, unknown> & { op: Request['op'] }): Promise<unknown> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.ref();
      this.worker.postMessage({ ...request, id });
    });
  }

  query(sql: string, params?: unknown[], options?: unknown): Promise<unknown> {
    return this.call({ op: 'query', sql, params, options: plainOptions(options) });
  }

  exec(sql: string): Promise<unknown> {
    return this.call({ op: 'exec', sql });
  }

  async dumpDataDir(compression?: 'gzip' | 'none' | 'auto'): Promise<Blob> {
    const bytes = (await this.call({ op: 'dump', compression })) as ArrayBuffer;
    return new Blob([bytes]);
  }

  async close(): Promise<void> {
    if (this.failure) return;
    await this.call({ op: 'close' });
    await this.worker.terminate();
  }
}
