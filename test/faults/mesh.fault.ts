import { after, before, describe, it } from 'node:test';
import { TestMesh } from '../support/mesh.ts';
import type { NodeProcess } from '../support/processes.ts';
import { assertGoals, measure, Outages, SearchProbe, services, uploadMany, waitForLoad } from './support.ts';

/**
 * The fault suite: the mesh as an operator runs it (api, a models node and an ingest
 * worker as separate processes on RabbitMQ, PostgreSQL, Redis and S3, vectors in
 * PostgreSQL), one dependency or process taken away at a time under 30 concurrent
 * uploads and a search probe. Each scenario prints one `FAULT {...}` line and asserts
 * the goals (support.ts: assertGoals). The machine's own services are stopped and
 * started with the commands of its notes and always left running.
 */

const UPLOADS = Number(process.env.FAULT_UPLOADS ?? 30);
/** How long a stopped dependency stays down: the scenario, not a synchronisation. */
const OUTAGE_MS = 5000;
const hold = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('fault suite: the mesh under outages', { concurrency: 1 }, () => {
  let mesh: TestMesh;
  let seed = 0;
  const node = (name: string) => mesh.processes.filter((p) => p.name === name && p.child.exitCode === null).at(-1)!;

  before(async () => {
    await services.ensureAllUp();
    // Operator defaults, except a shorter first retry delay so retried jobs finish
    // within the scenario's minute.
    mesh = await TestMesh.create({ JOB_BACKOFF_MS: '500' });
    await Promise.all([mesh.start('gateway', 'api'), mesh.start('models', 'emb,llm,analyze,maintenance'), mesh.start('worker', 'ingest')]);
    await mesh.waitForDiscovery(await mesh.token('ops', 'root', 'admin'));
  });
  after(async () => {
    await services.ensureAllUp();
    await mesh?.stop();
  });

  /** Runs `fault` once uploads are in flight, then settles, prints and asserts. */
  async function scenario(name: string, fault: (outages: Outages) => Promise<void>): Promise<void> {
    seed += 1;
    const tenant = `fault-${seed}-${name.replace(/[^a-z0-9]+/gi, '-').toLowerCase()}`;
    const token = await mesh.token(tenant, 'alice', 'editor');
    const outages = new Outages();
    const probe = new SearchProbe(() => mesh.apiUrl, token);
    probe.start();
    const uploaded = uploadMany(mesh, token, UPLOADS, { seed }).then((value) => ({ value }), (error: unknown) => ({ error }));
    try {
      try {
        await waitForLoad(mesh, tenant);
        await fault(outages);
      } finally {
        await services.ensureAllUp();
        outages.end();
      }
      const result = await uploaded;
      if ('error' in result) throw result.error;
      assertGoals(await measure(mesh, name, tenant, result.value, probe, outages));
    } catch (err) {
      // Printed at once: the spec reporter shows details only when the whole file ends.
      console.log(`FAULT ${name} failed: ${(err as Error).message}`);
      throw err;
    } finally {
      await probe.stop();
    }
  }

  async function restartProcess(name: string, services_: string, outages: Outages): Promise<void> {
    const victim: NodeProcess = node(name);
    outages.begin();
    victim.child.kill('SIGKILL');
    await victim.exited;
    // What Swarm does: start a new one.
    await mesh.start(name, services_);
    outages.end();
  }

  it('PostgreSQL stopped and started', () =>
    scenario('postgres-restart', async (outages) => {
      outages.begin();
      await services.pgStop();
      await hold(OUTAGE_MS);
      await services.pgStart();
      outages.end();
    }));

  it('Redis paused (CLIENT PAUSE)', () =>
    scenario('redis-pause', async (outages) => {
      outages.begin();
      await services.redisPause(OUTAGE_MS);
      await services.redisStart(); // answers once the pause is over
      outages.end();
    }));

  it('Redis restarted', () =>
    scenario('redis-restart', async (outages) => {
      outages.begin();
      await services.redisShutdown();
      await services.redisStart();
      outages.end();
    }));

  it('RabbitMQ app restarted', () =>
    scenario('rabbitmq-restart', async (outages) => {
      outages.begin();
      await services.rabbitStopApp();
      await services.rabbitStartApp();
      outages.end();
    }));

  it('ingest worker SIGKILLed', () => scenario('ingest-sigkill', (outages) => restartProcess('worker', 'ingest', outages)));

  it('emb node SIGKILLed', () => scenario('emb-sigkill', (outages) => restartProcess('models', 'emb,llm,analyze,maintenance', outages)));

  it('S3 server stopped and started', () =>
    scenario('s3-restart', async (outages) => {
      outages.begin();
      await mesh.s3.halt();
      await hold(OUTAGE_MS);
      await mesh.s3.resume();
      outages.end();
    }));
});
