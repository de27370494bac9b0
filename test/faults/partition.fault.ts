import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { TestMesh } from '../support/mesh.ts';
import { NetnsLab } from './netns.ts';
import { assertGoals, measure, Outages, SearchProbe, services, uploadMany, waitForLoad } from './support.ts';

/**
 * A network partition: the api and the workers (emb + ingest) run as hosts in network
 * namespaces of their own, each reaching PostgreSQL, Redis and S3 over one veth link
 * and RabbitMQ over another. Under 30 concurrent uploads and a search probe, the
 * workers' link to RabbitMQ is cut for 10 s (packets dropped, no reset), then healed.
 * Same goals as every fault scenario.
 */

const UPLOADS = Number(process.env.FAULT_UPLOADS ?? 30);
const CUT_MS = 10_000;

describe('fault suite: workers partitioned from RabbitMQ', () => {
  let mesh: TestMesh;
  const lab = new NetnsLab();
  let workersMq = '';

  before(async () => {
    const missing = await NetnsLab.available();
    assert.equal(missing, null, `the partition test ${missing}`);
    await services.ensureAllUp();
    mesh = await TestMesh.create({ JOB_BACKOFF_MS: '500' });
    const s3Port = Number(new URL(mesh.env.S3_ENDPOINT!).port);

    /** The environment of a process in a host: every server reached through that host's links. */
    const hostEnv = (svc: string, mq: string) => {
      const via = (url: string, address: string) => url.replace('127.0.0.1', address);
      return {
        DATABASE_URL: via(mesh.env.DATABASE_URL!, svc),
        REDIS_URL: via(mesh.env.REDIS_URL!, svc),
        S3_ENDPOINT: via(mesh.env.S3_ENDPOINT!, svc),
        TRANSPORTER: via(mesh.env.TRANSPORTER!, mq),
        QUEUE_URL: via(mesh.env.QUEUE_URL!, mq),
      };
    };
    const apiNs = await lab.host('api');
    const apiSvc = await lab.link(apiNs, [5432, 6379, s3Port]);
    const apiMq = await lab.link(apiNs, [5672]);
    const wkNs = await lab.host('wk');
    const wkSvc = await lab.link(wkNs, [5432, 6379, s3Port]);
    const wkMq = await lab.link(wkNs, [5672]);
    workersMq = wkMq.rootIf;

    await mesh.start('gateway', 'api', { ...hostEnv(apiSvc.rootAddress, apiMq.rootAddress), HOST: apiSvc.hostAddress }, { prefix: lab.exec(apiNs), apiHost: apiSvc.hostAddress });
    const workerEnv = hostEnv(wkSvc.rootAddress, wkMq.rootAddress);
    await Promise.all([
      mesh.start('models', 'emb,llm,analyze,maintenance', workerEnv, { prefix: lab.exec(wkNs) }),
      mesh.start('worker', 'ingest', workerEnv, { prefix: lab.exec(wkNs) }),
    ]);
    await mesh.waitForDiscovery(await mesh.token('ops', 'root', 'admin'));
  });

  after(async () => {
    if (workersMq) await lab.heal(workersMq).catch(() => undefined);
    await mesh?.stop();
    await lab.dispose();
  });

  it('cuts the link between the workers and RabbitMQ for 10 s under load, then heals it', async () => {
    const tenant = 'fault-partition';
    const token = await mesh.token(tenant, 'alice', 'editor');
    const outages = new Outages();
    const probe = new SearchProbe(() => mesh.apiUrl, token);
    probe.start();
    const uploaded = uploadMany(mesh, token, UPLOADS, { seed: 99 }).then((value) => ({ value }), (error: unknown) => ({ error }));
    try {
      try {
        await waitForLoad(mesh, tenant);
        outages.begin();
        await lab.cut(workersMq);
        await new Promise((r) => setTimeout(r, CUT_MS));
      } finally {
        await lab.heal(workersMq);
        outages.end();
      }
      const result = await uploaded;
      if ('error' in result) throw result.error;
      assertGoals(await measure(mesh, 'partition-workers-rabbitmq', tenant, result.value, probe, outages));
    } catch (err) {
      console.log(`FAULT partition failed: ${(err as Error).message}`);
      throw err;
    } finally {
      await probe.stop();
    }
  });
});
