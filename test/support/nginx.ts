import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { freePort, ROOT, waitFor } from './processes.ts';

/** Debian's nginx (apt package nginx; .ci/run installs it). */
export const NGINX_BIN = ['/usr/sbin/nginx', '/usr/local/sbin/nginx'].find((p) => existsSync(p)) ?? null;

export interface RunningNginx {
  url: string;
  dir: string;
  errorLog(): Promise<string>;
  stop(): Promise<void>;
}

/**
 * nginx/nginx.conf as shipped, with only what an unprivileged run on this machine needs
 * changed: the upstream (a local api), the listen address, the pid, log and temp paths,
 * and the Swarm resolver (absent here). Any other `from → to` replacement is passed in
 * `extra` and must match, so a test cannot silently drift from the real file.
 */
export async function testNginxConf(options: { upstream: string; listen: string; dir: string; extra?: Array<[string, string]> }): Promise<string> {
  let conf = await readFile(`${ROOT}/nginx/nginx.conf`, 'utf8');
  const replace = (from: string | RegExp, to: string) => {
    const next = conf.replace(from, to);
    if (next === conf) throw new Error(`nginx.conf no longer contains ${from}: update test/support/nginx.ts`);
    conf = next;
  };
  replace(/^pid .*;$/m, `pid ${options.dir}/nginx.pid;`);
  replace(/^\s*resolver .*;$/m, '');
  replace('server api:3000 ', `server ${options.upstream} `);
  replace(/listen 80;/, `listen ${options.listen};`);
  replace('access_log /dev/stdout json;', `access_log ${options.dir}/access.log json;`);
  replace('error_log /dev/stderr warn;', `error_log ${options.dir}/error.log warn;`);
  replace(/^http \{$/m, [
    'http {',
    ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `  ${t}_temp_path ${options.dir}/${t};`),
  ].join('\n'));
  for (const [from, to] of options.extra ?? []) replace(from, to);
  return conf;
}

export async function startNginx(upstream: string, extra?: Array<[string, string]>): Promise<RunningNginx> {
  if (!NGINX_BIN) throw new Error('nginx is not installed (apt-get install nginx; .ci/run does)');
  const dir = await mkdtemp(`${tmpdir()}/ragmesh-nginx-`);
  // Run as root, nginx's workers drop to `nobody` and must reach the temp paths.
  await chmod(dir, 0o755);
  for (const t of ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) {
    await mkdir(`${dir}/${t}`);
    await chmod(`${dir}/${t}`, 0o777);
  }
  const port = await freePort();
  const conf = await testNginxConf({ upstream, listen: `127.0.0.1:${port}`, dir, extra });
  await writeFile(`${dir}/nginx.conf`, conf);
  const child = spawn(NGINX_BIN, ['-p', dir, '-c', `${dir}/nginx.conf`, '-e', `${dir}/error.log`, '-g', 'daemon off;'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitFor('nginx to answer', async () => {
      if (child.exitCode !== null) throw new Error(`nginx exited: ${stderr}${await readFile(`${dir}/error.log`, 'utf8').catch(() => '')}`);
      return (await fetch(`${url}/nginx-health`).catch(() => null))?.ok;
    }, 15_000);
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  return {
    url,
    dir,
    errorLog: () => readFile(`${dir}/error.log`, 'utf8').catch(() => ''),
    async stop() {
      child.kill('SIGQUIT');
      await exited;
      await rm(dir, { recursive: true, force: true });
    },
  };
}
