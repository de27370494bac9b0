import { randomBytes } from 'node:crypto';
import { startS3Server, type TestS3Server } from './s3-server.ts';
import { httpJson } from './http.ts';
import { freePort, runScript, startNode, waitFor, type NodeProcess } from './processes.ts';
import { createTestDatabase, createTestVhost, REDIS_BASE_URL, tempDir, testKeyPrefix } from './services.ts';

/**
 * A mesh on this machine: real PostgreSQL, Redis, RabbitMQ (own database, key prefix
 * and vhost) and an S3 server, and ragmesh processes started on demand with the
 * environment an operator would give them.
 */
export class TestMesh {
  readonly env: Record<string, string> = {};
  readonly processes: NodeProcess[] = [];
  apiUrl = '';
  databaseUrl = '';
  s3!: TestS3Server;
  private disposables: Array<() => Promise<void>> = [];

  static async create(extra: Record<string, string> = {}): Promise<TestMesh> {
    const mesh = new TestMesh();
    const [database, vhost, s3, dataDir] = await Promise.all([createTestDatabase(), createTestVhost(), startS3Server(), tempDir()]);
    mesh.disposables.push(database.dispose, vhost.dispose, s3.stop, dataDir.dispose);
    mesh.databaseUrl = database.value;
    mesh.s3 = s3;
    Object.assign(mesh.env, {
      RAGMESH_PROFILE: 'mesh',
      TRANSPORTER: vhost.value,
      QUEUE_URL: vhost.value,
      NAMESPACE: 'e2e',
      DATABASE_URL: database.value,
      REDIS_URL: REDIS_BASE_URL,
      KV_PREFIX: testKeyPrefix(),
      S3_ENDPOINT: s3.endpoint,
      S3_ACCESS_KEY: s3.config.accessKey,
      S3_SECRET_KEY: s3.config.secretKey,
      // No Qdrant can run here, nor pgvector in Debian 12's PostgreSQL: vectors as plain arrays.
      VECTORS_DRIVER: 'postgres',
      JWT_SECRET: randomBytes(32).toString('hex'),
      DATA_DIR: dataDir.value,
      MODELS_CACHE_DIR: `${dataDir.value}/model-cache`,
      HOST: '127.0.0.1',
      LOG_LEVEL: 'info',
      ...extra,
    });
    return mesh;
  }

  /** Starts a process running `services`; the api one gets a port and becomes `apiUrl`. */
  async start(name: string, services: string, extra: Record<string, string> = {}, options: { prefix?: string[]; apiHost?: string } = {}): Promise<NodeProcess> {
    const env: Record<string, string> = { ...this.env, SERVICES: services, NODE_ID: `e2e-${name}`, ...extra };
    if (services.split(',').includes('api')) {
      env.PORT = String(await freePort());
      this.apiUrl = `http://${options.apiHost ?? '127.0.0.1'}:${env.PORT}`;
    }
    const node = startNode(name, env, 'main.ts', options.prefix);
    this.processes.push(node);
    await node.waitForLog((e) => e.msg === 'ragmesh ready', 90_000);
    return node;
  }

  async token(tenant: string, user: string, role: string): Promise<string> {
    const { stdout, code, stderr } = await runScript('scripts/token.ts', ['--tenant', tenant, '--user', user, '--role', role], this.env);
    if (code !== 0) throw new Error(`token: ${stderr}`);
    return stdout.trim();
  }

  /** Waits until the api sees every service of the mesh. */
  async waitForDiscovery(adminToken: string): Promise<void> {
    await waitFor('the gateway to discover every service', async () => {
      const res = await httpJson(`${this.apiUrl}/api/v1/status`, { token: adminToken });
      return res.status === 200 && res.body.missing.length === 0;
    }, 60_000);
  }

  async stop(): Promise<void> {
    await Promise.all(this.processes.map((p) => p.stop()));
    for (const dispose of this.disposables.reverse()) await dispose().catch(() => undefined);
  }
}

/** Deterministic text of `paragraphs` distinct paragraphs, for documents big enough to take a while. */
export function syntheticText(paragraphs: number, seed = 1): string {
  const words = ['contract', 'tenant', 'invoice', 'delivery', 'warranty', 'schedule', 'payment', 'liability', 'insurance', 'notice', 'договор', 'аренда', 'оплата', 'поставка', 'гарантия', 'срок'];
  let state = seed;
  const next = () => {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    return state;
  };
  const out: string[] = [];
  for (let p = 0; p < paragraphs; p++) {
    const sentence = Array.from({ length: 40 }, () => words[next() % words.length]).join(' ');
    out.push(`Paragraph ${p + 1}. ${sentence}.`);
  }
  return out.join('\n\n');
}
