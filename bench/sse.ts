/**
 * bench:sse — time to the first token of an answer through the mesh (client → nginx-less
 * api over HTTP → llm in another process over RabbitMQ → SSE back), against the same
 * backend called in-process, in one run.
 *
 *   ratio = added ms at p50 (mesh p50 − in-process p50)     goal ≤ 5 ms, lower is better
 *
 * Plain chat (no retrieval), so the figure is the transport and gateway cost, not
 * search. The backend is the offline extractive one.
 *
 * The client is HTTP/1.1 written on one kept-alive TCP connection (bench/support.ts
 * rawHttpClient: node:net, the request's bytes in one write, the token looked for in
 * each read), not `fetch` nor node:http: their own cost (about 2 ms and 0.9 ms per answer,
 * traced) is the bench client's, not the mesh's. Until 2026-12-02 this bench timed with
 * `fetch`, then with node:http (a client since replaced); figures of one client are not
 * comparable one for one with another's (docs/sse.md). All answers are in one chat, so
 * after the first each starts from the turns the api already knows.
 */
import { randomUUID } from 'node:crypto';
import os from 'node:os';
import { ExtractiveBackend } from '../lib/llm/extractive.ts';
import { httpJson } from '../test/support/http.ts';
import { TestMesh } from '../test/support/mesh.ts';
import { rawHttpClient } from './support.ts';

const SAMPLES = Number(process.env.BENCH_SAMPLES ?? 200);
// Answers before the timed ones: the first ~50 after a mesh starts are slower (JIT of the
// route, Moleculer and amqplib paths; docs/sse.md), and the figure is the mesh's steady state.
const WARMUP = Number(process.env.BENCH_WARMUP ?? 50);
const percentile = (values: number[], p: number) => [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.floor((p / 100) * values.length))]!;
const round = (x: number) => Math.round(x * 100) / 100;

async function inProcessFirstToken(): Promise<number> {
  const backend = new ExtractiveBackend();
  const started = performance.now();
  for await (const event of backend.generate({ messages: [{ role: 'user', content: 'hello there' }], sources: [], grounded: false, maxTokens: 64, signal: new AbortController().signal })) {
    if (event.type === 'token') return performance.now() - started;
  }
  throw new Error('no token');
}

const client = rawHttpClient();
const meshFirstToken = (url: string, token: string) => client.firstTokenMs(url, token, { content: `hello there ${randomUUID()}`, rag: false });

async function main(): Promise<void> {
  const mesh = await TestMesh.create();
  // 250 chat messages from one user in a minute: the transport is measured, not the rate limit.
  Object.assign(mesh.env, { RATE_LIMIT_PER_USER: 'chat=0', RATE_LIMIT_PER_TENANT: 'chat=0' });
  try {
    await Promise.all([mesh.start('gateway', 'api'), mesh.start('llm', 'llm'), mesh.start('models', 'emb,ingest,analyze,maintenance')]);
    await mesh.waitForDiscovery(await mesh.token('bench', 'ops', 'admin'));
    const token = await mesh.token('bench', 'user', 'editor');
    const chat = (await httpJson(`${mesh.apiUrl}/api/v1/chats`, { method: 'POST', token })).body;
    const url = `${mesh.apiUrl}/api/v1/chats/${chat.id}/messages`;

    for (let i = 0; i < WARMUP; i++) await meshFirstToken(url, token); // warm-up: connections, JIT
    // Alternate the two sides so drift in machine load hits both alike.
    const mesh1: number[] = [];
    const local: number[] = [];
    for (let i = 0; i < SAMPLES; i++) {
      mesh1.push(await meshFirstToken(url, token));
      local.push(await inProcessFirstToken());
    }
    const added = percentile(mesh1, 50) - percentile(local, 50);
    console.log(`first token: mesh p50 ${round(percentile(mesh1, 50))} ms, p95 ${round(percentile(mesh1, 95))} ms; in-process p50 ${round(percentile(local, 50))} ms`);
    console.log(
      JSON.stringify({
        bench: 'sse',
        ratio: round(added),
        goal: 5,
        lower_is_better: true,
        unit: 'ms added at p50',
        mesh_p50_ms: round(percentile(mesh1, 50)),
        mesh_p95_ms: round(percentile(mesh1, 95)),
        in_process_p50_ms: round(percentile(local, 50)),
        added_p95_ms: round(percentile(mesh1, 95) - percentile(local, 95)),
        samples: SAMPLES,
        warmup: WARMUP,
        load: os.loadavg().map((x) => Math.round(x * 100) / 100),
        transporter: 'amqp',
        client: 'HTTP/1.1 over node:net, one keep-alive connection',
        backend: 'extractive',
        cores: os.cpus().length,
        node: process.version,
      }),
    );
  } finally {
    client.close();
    await mesh.stop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
