import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmod, chown, mkdir, mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { statSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { SERVER_NODE_FLAGS } from '../lib/runtime/node-flags.ts';
import { freePort, ROOT, waitFor } from './support/processes.ts';

/** The runtime stage of the Dockerfile as data: its ENV, VOLUMEs, USER and the uid it creates. */
async function imageLayout() {
  const text = (await readFile(`${ROOT}/Dockerfile`, 'utf8')).replace(/\\\n\s*/g, ' ');
  const stages = text.split(/^FROM /m).slice(1);
  const runtime = stages.at(-1)!;
  const env: Record<string, string> = {};
  for (const line of runtime.split('\n').filter((l) => l.startsWith('ENV '))) {
    for (const m of line.slice(4).matchAll(/(\w+)=("[^"]*"|\S+)/g)) env[m[1]!] = m[2]!.replace(/^"|"$/g, '');
  }
  const volumes = JSON.parse(/^VOLUME (\[.*\])$/m.exec(runtime)![1]!) as string[];
  const user = /^USER (\S+)$/m.exec(runtime)![1]!;
  const uid = Number(/useradd [^\n]*--uid (\d+)/.exec(runtime)![1]);
  const gid = Number(/groupadd [^\n]*--gid (\d+)/.exec(runtime)![1]);
  return { stages, runtime, env, volumes, user, uid, gid };
}

describe('Dockerfile', () => {
  it('builds in stages on Node 22 slim with production dependencies only, runs as a non-root user under tini, with OCR data and a HEALTHCHECK', async () => {
    const { stages, runtime, env, volumes, user } = await imageLayout();
    assert.ok(stages.length >= 2, 'multi-stage');
    assert.match(await readFile(`${ROOT}/Dockerfile`, 'utf8'), /^ARG NODE_IMAGE=node:22\.\d+\.\d+-bookworm-slim$/m);
    assert.match(stages[0]!, /npm ci --omit=dev/);
    assert.match(runtime, /COPY --from=deps \/app\/node_modules/);
    assert.doesNotMatch(runtime, /npm (ci|install)/, 'no dependency install in the runtime stage');
    assert.notEqual(user.split(':')[0], 'root');
    assert.match(runtime, /^ENTRYPOINT \["\/usr\/bin\/tini", "--"\]$/m);
    assert.match(runtime, /tesseract-ocr-eng tesseract-ocr-rus/);
    assert.match(runtime, /^HEALTHCHECK .*CMD \["node", "scripts\/healthcheck\.ts"\]$/m);
    // The server runs with the same V8 flags as `npm start` and the test harness.
    assert.deepEqual(JSON.parse(/^CMD (\[.*\])$/m.exec(runtime)![1]!), ['node', ...SERVER_NODE_FLAGS, '--import', 'tsx', 'main.ts']);
    const pkg = JSON.parse(await readFile(`${ROOT}/package.json`, 'utf8')) as { scripts: Record<string, string> };
    assert.equal(pkg.scripts.start, `tsx ${SERVER_NODE_FLAGS.join(' ')} main.ts`);
    for (const dir of [env.DATA_DIR!, env.MODELS_CACHE_DIR!]) assert.ok(volumes.includes(dir), `${dir} is a volume`);
    assert.ok(!env.DATA_DIR!.startsWith('/app') && !env.MODELS_CACHE_DIR!.startsWith('/app'), 'nothing written under the code');
    const ignored = await readFile(`${ROOT}/.dockerignore`, 'utf8');
    for (const path of ['node_modules', '.git', 'data']) assert.match(ignored, new RegExp(`^${path.replace('.', '\\.')}$`, 'm'));
  });
});

/**
 * No Docker engine here: the image's layout is rebuilt under a temp prefix — the code
 * read-only (this checkout, owned by root), DATA_DIR and MODELS_CACHE_DIR owned by the
 * image's uid — and the service is started as that uid with the image's environment.
 */
/** Why the service cannot run as another uid from this checkout, if it cannot. */
function cannotSwitchUser(): string | false {
  if (process.getuid?.() !== 0) return 'needs root to switch to the image\'s uid';
  // The image's code is world-readable under /app; a checkout under a private home is not.
  for (const dir of [ROOT, process.execPath]) {
    for (let d = dir; d !== '/'; d = d.slice(0, d.lastIndexOf('/')) || '/') {
      if ((statSync(d).mode & 0o001) === 0) return `${d} is not readable by other users, as /app is in the image`;
    }
  }
  return false;
}

describe('the service as the image\'s unprivileged user', { skip: cannotSwitchUser() }, () => {
  let prefix: string;
  let child: ReturnType<typeof spawn> | null = null;
  let output = '';
  let layout: Awaited<ReturnType<typeof imageLayout>>;
  let env: Record<string, string>;
  const port = { value: 0 };

  before(async () => {
    layout = await imageLayout();
    prefix = await mkdtemp(`${tmpdir()}/ragmesh-image-`);
    await chmod(prefix, 0o755);
    const mapped = (p: string) => `${prefix}${p}`;
    for (const volume of layout.volumes) {
      await mkdir(mapped(volume), { recursive: true });
      // Parents as the image has them: root-owned, traversable.
      for (let dir = volume; dir !== '/'; dir = dir.slice(0, dir.lastIndexOf('/')) || '/') await chmod(mapped(dir), 0o755);
      await chown(mapped(volume), layout.uid, layout.gid);
      await chmod(mapped(volume), 0o750);
    }
    port.value = await freePort();
    env = {
      PATH: process.env.PATH!,
      ...layout.env,
      HOME: mapped(layout.env.HOME!),
      DATA_DIR: mapped(layout.env.DATA_DIR!),
      MODELS_CACHE_DIR: mapped(layout.env.MODELS_CACHE_DIR!),
      // No PostgreSQL/RabbitMQ for this one process: the embedded profile, all six services.
      RAGMESH_PROFILE: 'embedded',
      PORT: String(port.value),
      HOST: '127.0.0.1',
      HEALTH_PORT: '0',
      LOG_LEVEL: 'info',
    };
    child = spawn(process.execPath, [...SERVER_NODE_FLAGS, '--import', 'tsx', 'main.ts'], { cwd: ROOT, env, uid: layout.uid, gid: layout.gid, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout!.setEncoding('utf8').on('data', (c: string) => (output += c));
    child.stderr!.setEncoding('utf8').on('data', (c: string) => (output += c));
  });
  after(async () => {
    if (child && child.exitCode === null) {
      child.kill('SIGTERM');
      await new Promise((r) => child!.once('exit', r));
    }
    await rm(prefix, { recursive: true, force: true });
  });

  it('becomes ready, writes only into its volumes, and passes the image\'s HEALTHCHECK', async () => {
    await waitFor('the service to be ready', async () => {
      if (child!.exitCode !== null) throw new Error(`exited ${child!.exitCode}: ${output.slice(-3000)}`);
      return (await fetch(`http://127.0.0.1:${port.value}/readyz`).catch(() => null))?.ok;
    }, 120_000).catch((err: Error) => assert.fail(`${err.message}\n${output.slice(-3000)}`));

    // The database, secrets and the verified model files landed in the volumes, owned by the service's uid.
    const data = await readdir(env.DATA_DIR!);
    assert.ok(data.length > 0, 'DATA_DIR holds the embedded database');
    assert.equal((await stat(`${env.DATA_DIR}/${data[0]}`)).uid, layout.uid);
    // emb loads its model after the api reports ready: wait for the verified files to land.
    const modelDir = await waitFor('the verified starter model in MODELS_CACHE_DIR', async () => (await readdir(env.MODELS_CACHE_DIR!)).at(0), 120_000);
    assert.equal((await stat(`${env.MODELS_CACHE_DIR}/${modelDir}`)).uid, layout.uid);

    const health = spawn(process.execPath, ['scripts/healthcheck.ts'], { cwd: ROOT, env, uid: layout.uid, gid: layout.gid });
    let healthOut = '';
    health.stderr!.setEncoding('utf8').on('data', (c: string) => (healthOut += c));
    const code = await new Promise((r) => health.once('exit', r));
    assert.equal(code, 0, healthOut);
  });
});
