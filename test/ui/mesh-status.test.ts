/**
 * The admin page's system status over a real mesh: four processes (gateway, models,
 * two ingest workers) on PostgreSQL, Redis, RabbitMQ and S3, seen from chromium. Every
 * service instance of every node is listed with its readiness; a node that leaves
 * drops out of the list while the mesh stays ready.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { launchBrowser, withScreenshot, type TestBrowser } from '../support/browser.ts';
import { TestMesh } from '../support/mesh.ts';
import { waitFor } from '../support/processes.ts';

describe('admin system status over a mesh (chromium)', () => {
  let mesh: TestMesh;
  let browser: TestBrowser;
  let admin: string;

  before(async () => {
    mesh = await TestMesh.create();
    await Promise.all([mesh.start('gateway', 'api'), mesh.start('models', 'emb,llm,analyze,maintenance'), mesh.start('worker-a', 'ingest'), mesh.start('worker-b', 'ingest')]);
    admin = await mesh.token('acme', 'ops', 'admin');
    await mesh.waitForDiscovery(admin);
    browser = await launchBrowser(mesh.apiUrl);
  });
  after(async () => {
    await browser?.close();
    await mesh?.stop();
  });

  it('lists every service instance of every node with its checks; a node that leaves drops out', async () => {
    const { page, context } = await browser.newPage({ token: admin });
    const rows = async () =>
      (await page.locator('#system tr[data-service]').evaluateAll((trs) => trs.map((tr) => `${(tr as HTMLElement).dataset.service}@${(tr as HTMLElement).dataset.node}`))).sort();
    await withScreenshot(page, 'mesh-status', async () => {
      await page.goto('/#/admin');
      await page.locator('#system tr[data-service="api"]').waitFor();
      assert.deepEqual(await rows(), [
        'analyze@e2e-models',
        'api@e2e-gateway',
        'emb@e2e-models',
        'ingest@e2e-worker-a',
        'ingest@e2e-worker-b',
        'llm@e2e-models',
        'maintenance@e2e-models',
      ]);
      assert.equal(await page.locator('#system [data-ready]').getAttribute('data-ready'), 'true');
      // The workers' checks are their own: database, queue, objects as each process sees them.
      assert.match((await page.locator('#system tr[data-node="e2e-worker-b"]').textContent()) ?? '', /db ✓ \d+ ms.*queue ✓/);

      await mesh.processes.find((p) => p.name === 'worker-b')!.stop();
      await waitFor('worker-b to drop out of the page', async () => {
        await page.getByRole('button', { name: 'Refresh: System status' }).click();
        await page.locator('#system tr[data-service="api"]').waitFor();
        return !(await rows()).includes('ingest@e2e-worker-b');
      }, 30_000);
      assert.ok((await rows()).includes('ingest@e2e-worker-a'));
      assert.equal(await page.locator('#system [data-ready]').getAttribute('data-ready'), 'true');
    });
    await context.close();
  });
});
