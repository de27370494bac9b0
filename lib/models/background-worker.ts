/** The thread of a BackgroundLane: one ONNX session, batches in, vectors out. */
import os from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import type { OnnxEmbedSpec } from './manifest.ts';
import { OnnxSentenceEncoder, type Encoded } from './onnx-embedder.ts';

const { folder, spec, threads, nice } = workerData as { folder: string; spec: OnnxEmbedSpec; threads: number; nice: number };
const port = parentPort!;

if (nice > 0) {
  // On Linux the nice value is per thread: 0 names this thread alone, and the threads
  // ONNX Runtime starts below inherit it. Raising it needs no privilege.
  try {
    os.setPriority(0, nice);
  } catch {
    // A platform without per-thread priority still gets the thread of its own.
  }
}

try {
  const encoder = await OnnxSentenceEncoder.open(folder, spec, { threads });
  port.on('message', async (msg: { type: 'run'; id: number; batch: Encoded[] } | { type: 'close' }) => {
    if (msg.type === 'close') {
      await encoder.close().catch(() => undefined);
      port.close();
      return;
    }
    try {
      const vectors = await encoder.run(msg.batch);
      port.postMessage({ type: 'done', id: msg.id, vectors }, vectors.map((v) => v.buffer as ArrayBuffer));
    } catch (err) {
      port.postMessage({ type: 'error', id: msg.id, message: (err as Error).message });
    }
  });
  port.postMessage({ type: 'ready' });
} catch (err) {
  port.postMessage({ type: 'failed', message: (err as Error).message });
}
