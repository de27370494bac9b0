import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { promisify } from 'node:util';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { loadConfig, SERVICE_NAMES, VARIABLES } from '../lib/config/env.ts';
import { ROOT } from './support/processes.ts';

interface StackService {
  image: string;
  environment?: Record<string, string>;
  networks?: Record<string, unknown> | string[];
  ports?: unknown[];
  secrets?: Array<{ source: string; target?: string }>;
  healthcheck?: { test?: string[]; interval?: string; disable?: boolean };
  volumes?: Array<{ source?: string; target: string }>;
  deploy?: {
    replicas?: number;
    update_config?: { parallelism?: number; order?: string; failure_action?: string; monitor?: string };
    rollback_config?: { parallelism?: number; order?: string; failure_action?: string; monitor?: string };
    restart_policy?: { condition?: string };
    resources?: { limits?: { cpus?: string; memory?: string }; reservations?: { cpus?: string; memory?: string } };
  };
}
interface Stack {
  services: Record<string, StackService>;
  networks: Record<string, { internal?: boolean; driver?: string }>;
  secrets: Record<string, { external?: boolean }>;
  configs: Record<string, { file?: string }>;
}

const execFileP = promisify(execFile);
const STATELESS = [...SERVICE_NAMES, 'nginx'];
const STORAGE = ['postgres', 'redis', 'rabbitmq', 'qdrant', 'minio'];

/**
 * stack.yml as Swarm reads it: `docker stack config` (the CLI only, no engine) resolves
 * anchors, merges and ${VARIABLES} exactly as `docker stack deploy` would, and fails on
 * what a deploy would refuse. .ci/run installs the docker CLI when it is missing.
 */
async function stackConfig(env: Record<string, string>): Promise<{ stack: Stack; stdout: string }> {
  const { stdout } = await execFileP('docker', ['stack', 'config', '-c', 'stack.yml'], {
    cwd: ROOT,
    env: { PATH: process.env.PATH!, HOME: process.env.HOME ?? '/tmp', DOCKER_CONFIG: `${tmpdir()}/ragmesh-docker-config`, ...env },
  });
  return { stack: parse(stdout) as Stack, stdout };
}

const networksOf = (s: StackService) => (Array.isArray(s.networks) ? s.networks : Object.keys(s.networks ?? {})).sort();

/** Debian's docker.io (20.10) has no `stack config`; these machines carry a newer CLI (see .ci/run). */
const STACK_CONFIG = await execFileP('docker', ['stack', 'config', '--help']).then(
  () => null,
  (err: Error) => `the docker CLI cannot run \`docker stack config\` (${err.message.split('\n')[0]}): Debian 12’s docker.io (20.10) lacks it; use a newer Docker CLI`,
);

describe('stack.yml (validated by docker stack config)', { skip: STACK_CONFIG ?? false }, async () => {
  if (STACK_CONFIG) return;
  const { stack, stdout } = await stackConfig({ REGISTRY: 'registry.example.com:5000', RAGMESH_VERSION: '1.4.0' });

  it('refuses to deploy without a registry and a version', async () => {
    await assert.rejects(stackConfig({ RAGMESH_VERSION: '1.4.0' }), /REGISTRY/);
    await assert.rejects(stackConfig({ REGISTRY: 'registry.example.com' }), /RAGMESH_VERSION/);
  });

  it('runs every ragmesh service from ${REGISTRY}/ragmesh:${RAGMESH_VERSION} and every other image at a pinned version', () => {
    for (const name of SERVICE_NAMES) {
      assert.equal(stack.services[name]?.image, 'registry.example.com:5000/ragmesh:1.4.0', name);
      assert.equal(stack.services[name]?.environment?.SERVICES, name);
    }
    for (const [name, service] of Object.entries(stack.services)) {
      if ((SERVICE_NAMES as readonly string[]).includes(name)) continue;
      // A full version (x.y.z; PostgreSQL's releases are major.minor), a dated release or a digest: never latest, never a moving major.
      const version = name === 'postgres' ? /:\d+\.\d+-[a-z]+$/ : /(:v?\d+\.\d+\.\d+[\w.-]*|:RELEASE\.[\w.-]+|@sha256:[0-9a-f]{64})$/;
      assert.match(service.image, version, `${name}: ${service.image} is not pinned`);
    }
  });

  it('gives every service update, rollback and restart policies, limits, reservations and a healthcheck', () => {
    for (const [name, service] of Object.entries(stack.services)) {
      const d = service.deploy ?? {};
      const order = STATELESS.includes(name) ? 'start-first' : 'stop-first';
      assert.equal(d.update_config?.order, order, `${name}: update order`);
      assert.equal(d.update_config?.failure_action, 'rollback', `${name}: update failure_action`);
      assert.ok(d.update_config?.monitor && d.update_config.monitor !== '0s', `${name}: update monitor`);
      assert.ok((d.update_config?.parallelism ?? 0) >= 1, `${name}: update parallelism`);
      assert.equal(d.rollback_config?.order, order, `${name}: rollback order`);
      assert.ok(d.rollback_config?.failure_action && d.rollback_config.monitor, `${name}: rollback_config`);
      assert.ok(d.restart_policy?.condition, `${name}: restart_policy`);
      for (const kind of ['limits', 'reservations'] as const) {
        assert.ok(Number(d.resources?.[kind]?.cpus) > 0, `${name}: ${kind}.cpus`);
        assert.ok(Number(d.resources?.[kind]?.memory) > 0, `${name}: ${kind}.memory`);
      }
      assert.ok(Number(d.resources!.reservations!.memory) <= Number(d.resources!.limits!.memory), `${name}: reservation within limit`);
      assert.ok(service.healthcheck?.test?.length && !service.healthcheck.disable, `${name}: healthcheck`);
    }
  });

  it('keeps every secret in Swarm secrets, read through *_FILE variables', async () => {
    const secretVars = VARIABLES.filter((v) => v.secret).map((v) => v.name);
    assert.ok(Object.values(stack.secrets).every((s) => s.external), 'secrets are created by the operator, never read from the repo');
    assert.doesNotMatch(stdout, /(password|secret)[ \t]*:[ \t]*[^/\s]/i, 'no password in the rendered stack');
    for (const [name, service] of Object.entries(stack.services)) {
      const mounted = new Set((service.secrets ?? []).map((s) => s.target ?? s.source));
      for (const [key, value] of Object.entries(service.environment ?? {})) {
        assert.ok(!secretVars.includes(key), `${name}: ${key} is a secret and must come from ${key}_FILE`);
        assert.doesNotMatch(key, /(PASSWORD|SECRET|_KEY)$/, `${name}: ${key} set in plain text`);
        if (key.endsWith('_FILE') && value.startsWith('/run/secrets/')) {
          assert.ok(mounted.has(value.slice('/run/secrets/'.length)), `${name}: ${key} points at ${value}, which is not mounted`);
        }
      }
    }
    // Each ragmesh service boots with its secrets as Swarm would mount them.
    const dir = await mkdtemp(`${tmpdir()}/run-secrets-`);
    const fake: Record<string, string> = {
      ragmesh_amqp_url: 'amqp://ragmesh:pw@rabbitmq:5672/ragmesh',
      ragmesh_database_url: 'postgres://ragmesh:pw@postgres:5432/ragmesh',
      ragmesh_redis_url: 'redis://:pw@redis:6379/0',
      ragmesh_s3_access_key: 'ragmesh-app',
      ragmesh_s3_secret_key: 'app-secret',
      ragmesh_jwt_secret: 'j'.repeat(48),
    };
    try {
      for (const name of SERVICE_NAMES) {
        const env: Record<string, string> = {};
        for (const [key, value] of Object.entries(stack.services[name]!.environment!)) {
          if (!key.endsWith('_FILE')) env[key] = value;
          else {
            const secret = value.slice('/run/secrets/'.length);
            assert.ok(fake[secret] !== undefined, `${name}: unexpected secret ${secret} (add a fake value here)`);
            await writeFile(`${dir}/${secret}`, `${fake[secret]}\n`);
            env[key] = `${dir}/${secret}`;
          }
        }
        const config = loadConfig(env);
        assert.equal(config.profile, 'mesh');
        assert.deepEqual(config.services, [name]);
        assert.equal(config.transporter, fake.ragmesh_amqp_url);
        assert.equal(config.auth.jwtSecret, fake.ragmesh_jwt_secret);
        if (name !== 'api') assert.equal(config.healthPort, 9090, `${name}: HEALTH_PORT for healthcheck and /metrics`);
      }
    } finally {
      await rm(dir, { recursive: true });
    }
  });

  it('separates edge, app and storage networks; app and storage have no route out; only nginx and grafana are published', () => {
    assert.equal(stack.networks.app?.internal, true);
    assert.equal(stack.networks.storage?.internal, true);
    assert.ok(!stack.networks.edge?.internal);
    const published = Object.entries(stack.services).filter(([, s]) => s.ports?.length).map(([n]) => n).sort();
    assert.deepEqual(published, ['grafana', 'nginx']);
    for (const name of SERVICE_NAMES) assert.deepEqual(networksOf(stack.services[name]!), ['app', 'storage'], name);
    for (const name of STORAGE) assert.deepEqual(networksOf(stack.services[name]!), ['storage'], name);
    assert.deepEqual(networksOf(stack.services.nginx!), ['app', 'edge']);
    assert.deepEqual(networksOf(stack.services.prometheus!), ['app']);
  });

  it('gives the model cache of emb, llm and ingest a volume at the image\'s MODELS_CACHE_DIR', async () => {
    const dockerfile = await readFile(`${ROOT}/Dockerfile`, 'utf8');
    const cacheDir = /MODELS_CACHE_DIR=(\S+)/.exec(dockerfile)![1]!;
    for (const name of ['emb', 'llm', 'ingest']) {
      assert.ok(stack.services[name]!.volumes?.some((v) => v.target === cacheDir && v.source === 'models_cache'), name);
    }
  });

  it('ships every config file it names', async () => {
    for (const [name, config] of Object.entries(stack.configs)) {
      assert.ok(config.file, name);
      await readFile(config.file!);
    }
  });
});

describe('deploy/: Prometheus and Grafana', () => {
  const metricNames = async () => {
    const { readdir } = await import('node:fs/promises');
    const names = new Set<string>();
    for (const file of await readdir(`${ROOT}/lib/metrics`)) {
      if (file.endsWith('.test.ts')) continue;
      for (const m of (await readFile(`${ROOT}/lib/metrics/${file}`, 'utf8')).matchAll(/'(ragmesh_[a-z_]+)'/g)) names.add(m[1]!);
    }
    return names;
  };
  /** ragmesh_* names in a query, without the histogram/counter suffixes Prometheus adds. */
  const used = (text: string) => [...new Set([...text.matchAll(/\b(ragmesh_[a-z_]+)/g)].map((m) => m[1]!.replace(/_(bucket|sum|count)$/, '')))];

  it('scrapes every replica of every ragmesh service through Swarm DNS, on the port that serves /metrics', async () => {
    const config = parse(await readFile(`${ROOT}/deploy/prometheus/prometheus.yml`, 'utf8')) as { scrape_configs: Array<{ job_name: string; dns_sd_configs?: Array<{ names: string[]; type: string; port: number }> }>; rule_files: string[] };
    for (const name of SERVICE_NAMES) {
      const job = config.scrape_configs.find((j) => j.job_name === name);
      assert.ok(job, name);
      assert.deepEqual(job.dns_sd_configs?.[0]?.names, [`tasks.${name}`]);
      assert.equal(job.dns_sd_configs?.[0]?.type, 'A');
      assert.equal(job.dns_sd_configs?.[0]?.port, name === 'api' ? 3000 : 9090);
    }
    assert.deepEqual(config.rule_files, ['/etc/prometheus/alerts.yml']);
  });

  it('alerts on latency, 5xx, queue length, dead letters, stuck jobs and readiness, each with its runbook section', async () => {
    const rules = parse(await readFile(`${ROOT}/deploy/prometheus/alerts.yml`, 'utf8')) as { groups: Array<{ rules: Array<{ alert: string; expr: string; annotations: { runbook: string } }> }> };
    const all = rules.groups.flatMap((g) => g.rules);
    const runbook = await readFile(`${ROOT}/docs/operations.md`, 'utf8');
    const known = await metricNames();
    for (const covers of ['ragmesh_http_request_duration_seconds_bucket', 'status=~"5..', 'ragmesh_queue_depth', 'ragmesh_queue_dead_letters', 'ragmesh_jobs_stuck', 'readiness']) {
      assert.ok(all.some((r) => r.expr.includes(covers)), covers);
    }
    for (const rule of all) {
      assert.equal(rule.annotations.runbook, `docs/operations.md#${rule.alert.toLowerCase()}`);
      assert.ok(runbook.includes(`\n### ${rule.alert}\n`), `docs/operations.md has a section for ${rule.alert}`);
      for (const name of used(rule.expr)) assert.ok(known.has(name), `${rule.alert}: ${name} is not a ragmesh metric`);
    }
  });

  it('ships a Grafana dashboard whose queries use only metrics ragmesh exports', async () => {
    const dashboard = JSON.parse(await readFile(`${ROOT}/deploy/grafana/ragmesh.json`, 'utf8')) as { uid: string; panels: Array<{ title: string; targets: Array<{ expr: string }> }> };
    assert.equal(dashboard.uid, 'ragmesh');
    const known = await metricNames();
    const exprs = dashboard.panels.flatMap((p) => p.targets.map((t) => t.expr)).join('\n');
    for (const name of used(exprs)) assert.ok(known.has(name), `${name} is not a ragmesh metric`);
    for (const name of known) assert.ok(exprs.includes(name), `the dashboard shows ${name}`);
  });
});
