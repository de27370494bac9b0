import { Worker } from 'node:worker_threads';
import type { OnnxEmbedSpec } from './manifest.ts';
import type { Encoded } from './onnx-embedder.ts';

export interface BackgroundLaneOptions {
  /** Intra-op threads of the lane's own session. */
  threads: number;
  /**
   * Nice value of the lane's thread (and of the ORT threads it starts, which inherit
   * it on Linux): the kernel then runs a query's inference first whenever both want
   * a core, which no queue in this process can do once a batch is inside ONNX Runtime.
   */
  nice: number;
  /** Closed after this long without background work; reopened on the next batch. */
  idleMs: number;
}

interface Pending {
  resolve(vectors: Float32Array[]): void;
  reject(err: unknown): void;
}

type Reply = { type: 'ready' } | { type: 'failed'; message: string } | { type: 'done'; id: number; vectors: Float32Array[] } | { type: 'error'; id: number; message: string };

/**
 * A second session of one model on its own worker thread, for background (re-index)
 * batches. onnxruntime-node runs an inference synchronously on the calling thread, so
 * a re-index batch run beside the queries would hold the event loop for its whole
 * duration and every query arriving meanwhile would wait for it; on its own thread it
 * holds only that thread, at a lower CPU priority.
 */
export class BackgroundLane {
  private worker: Worker | null = null;
  private opening: Promise<Worker> | null = null;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private idleTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly folder: string,
    private readonly spec: OnnxEmbedSpec,
    private readonly options: BackgroundLaneOptions,
  ) {}

  async run(batch: Encoded[]): Promise<Float32Array[]> {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = null;
    const worker = await this.open();
    const id = this.nextId++;
    worker.ref();
    try {
      return await new Promise<Float32Array[]>((resolve, reject) => {
        this.pending.set(id, { resolve, reject });
        worker.postMessage({ type: 'run', id, batch });
      });
    } finally {
      if (this.pending.size === 0) {
        worker.unref();
        this.idleTimer = setTimeout(() => void this.close(), this.options.idleMs);
        this.idleTimer.unref();
      }
    }
  }

  private open(): Promise<Worker> {
    if (this.worker) return Promise.resolve(this.worker);
    this.opening ??= new Promise<Worker>((resolve, reject) => {
      const worker = new Worker(new URL('./background-worker.ts', import.meta.url), {
        workerData: { folder: this.folder, spec: this.spec, threads: this.options.threads, nice: this.options.nice },
      });
      // Referenced only while batches are on it (see run): an idle lane does not keep the process alive.
      worker.on('message', (reply: Reply) => {
        if (reply.type === 'ready') {
          this.worker = worker;
          this.opening = null;
          resolve(worker);
        } else if (reply.type === 'failed') {
          this.opening = null;
          void worker.terminate();
          reject(new Error(`background session of ${this.spec.model} failed to open: ${reply.message}`));
        } else {
          const waiter = this.pending.get(reply.id);
          this.pending.delete(reply.id);
          if (reply.type === 'done') waiter?.resolve(reply.vectors);
          else waiter?.reject(new Error(reply.message));
        }
      });
      worker.on('error', (err) => this.fail(worker, err, reject));
      worker.on('exit', (code) => this.fail(worker, new Error(`background embedding thread exited (code ${code})`), reject));
    });
    return this.opening;
  }

  /** The thread is gone: every batch on it fails (the re-index retries), the next one reopens it. */
  private fail(worker: Worker, err: Error, reject: (err: unknown) => void): void {
    if (this.worker === worker) this.worker = null;
    this.opening = null;
    reject(err);
    for (const waiter of this.pending.values()) waiter.reject(err);
    this.pending.clear();
  }

  async close(): Promise<void> {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = null;
    const worker = this.worker ?? (await this.opening?.catch(() => null)) ?? null;
    this.worker = null;
    this.opening = null;
    if (!worker) return;
    if (this.pending.size > 0) return void (this.worker = worker); // busy again meanwhile
    worker.ref();
    const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
    worker.postMessage({ type: 'close' });
    await exited;
  }
}
