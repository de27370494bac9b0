import path from 'node:path';
import { createInterface } from 'node:readline/promises';
import { parseArgs } from 'node:util';
import { resolveJwtSecret, signAccessToken } from '../lib/auth/jwt.ts';
import { loadConfig, type Config } from '../lib/config/env.ts';
import { createLogger } from '../lib/logging.ts';
import { buildImport, ImportRefused, planImport, type ImportAnswers, type ImportPlan } from '../lib/models/import.ts';
import {
  buildManifest,
  MODEL_KINDS,
  readManifest,
  verifyFolder,
  writeManifest,
  type EmbedSpec,
  type ModelKind,
  type ModelManifest,
} from '../lib/models/manifest.ts';
import { publishFolder } from '../lib/models/publish.ts';
import { Stores } from '../lib/runtime/stores.ts';

/**
 * The operator's model command. `build`, `verify` and `import` work on local folders;
 * everything else talks to the running system through its admin API
 * (/api/v1/admin/models), the same in the embedded default and in the mesh, so the
 * maintenance service validates, warms and audits every change. `publish` first
 * copies the files into the models bucket (the storage the services load from), then
 * asks the API to verify that copy and register the version.
 */
const USAGE = `Usage: npm run models -- <command> [arguments] [--json]

  list                               Aliases, their active/previous version and every registered version.
  status [ALIAS] [--follow]          Re-index progress and coverage of every live version (--follow: stream progress).
  import <folder|file.gguf> [--alias A] [--version V] [--dimension D] [--pooling mean|cls] [--max-tokens N]
         [--query-prefix P] [--passage-prefix P] [--onnx onnx/model_quantized.onnx] [--name N] [--license L]
         [--out DIR] [--yes] [--publish]
                                     Reads a Hugging Face model folder (config.json, tokenizer.json, onnx/model*.onnx,
                                     modules.json, 1_Pooling/config.json) or a GGUF file, asks only for what the files
                                     do not say (--yes: never ask, fail instead), builds and verifies the version folder.
  publish <folder>                   Uploads a version folder to the models bucket and registers it (not active yet).
  reindex ALIAS VERSION [--tenant T] [--wait]
                                     Builds VERSION's vectors beside the live ones (all tenants, or one).
  cancel ALIAS VERSION [--tenant T]  Stops a running re-index.
  coverage ALIAS VERSION             Vectors stored vs chunks, per tenant.
  compare ALIAS V1 V2 --tenant T [--query Q]...
                                     Same queries against both versions: overlap@10 and latency (default: recent questions).
  switch ALIAS VERSION [--force]     Makes VERSION active; refused below 100 % coverage unless --force (audited).
  rollback ALIAS                     Back to the previous version (its collection is still current).
  delete ALIAS VERSION               Removes a version that is not active, and its collection.
  build <folder> --alias A --version V --kind embed|ocr|llm|rerank [...]   Manifest by hand (see docs/models.md).
  verify <folder>                    Checks every file against <folder>/manifest.json.

  Server: RAGMESH_URL (default http://127.0.0.1:$PORT); token: RAGMESH_TOKEN, else an admin token is signed
  with the deployment's JWT secret (JWT_SECRET / DATA_DIR/secrets/jwt-secret).`;

interface Cli {
  json: boolean;
  out(human: string, data: unknown): void;
}

class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly data?: unknown,
  ) {
    super(message);
  }
}

async function api<T>(config: Config, method: string, route: string, body?: unknown): Promise<T> {
  const base = (process.env.RAGMESH_URL ?? `http://127.0.0.1:${config.http.port}`).replace(/\/+$/, '');
  const token = process.env.RAGMESH_TOKEN ?? (await signAccessToken({ tenantId: 'ops', userId: 'models-cli', roles: ['admin'] }, await resolveJwtSecret(config), { issuer: config.auth.issuer, ttlSeconds: 3600 }));
  let res: Response;
  try {
    res = await fetch(`${base}/api/v1/${route}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
  } catch (err) {
    throw new ApiError(0, 'UNREACHABLE', `cannot reach ragmesh at ${base} (${(err as Error).message}); start it (npm start) or set RAGMESH_URL`);
  }
  const text = await res.text();
  const parsed = text ? (JSON.parse(text) as unknown) : null;
  if (!res.ok) {
    const e = (parsed as { error?: { code?: string; message?: string; data?: unknown } } | null)?.error;
    throw new ApiError(res.status, e?.code ?? String(res.status), e?.message ?? text, e?.data);
  }
  return parsed as T;
}

const pct = (x: number) => `${(x * 100).toFixed(1)} %`;

async function ask(plan: ImportPlan, interactive: boolean): Promise<void> {
  const open = plan.missing.filter((q) => plan.answers[q.field] === undefined);
  if (open.length === 0) return;
  if (!interactive) {
    throw new ImportRefused(path.basename(plan.source), null, `values for ${open.map((q) => `${q.flag}`).join(', ')}`, 'the files do not say');
  }
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    for (const q of open) {
      const hint = q.choices ? ` [${q.choices.join('/')}]` : '';
      const answer = await rl.question(`${q.prompt}${hint}: `);
      const value = answer.trim();
      if (q.field === 'dimension' || q.field === 'maxTokens') (plan.answers[q.field] as number) = Number(value);
      else if (q.field === 'queryPrefix' || q.field === 'passagePrefix') (plan.answers[q.field] as string) = answer.replace(/^"(.*)"$/, '$1');
      else (plan.answers as Record<string, unknown>)[q.field] = value;
    }
  } finally {
    rl.close();
  }
}

async function publish(config: Config, folder: string): Promise<{ manifest: ModelManifest; created: boolean }> {
  const stores = new Stores(config, createLogger('warn', { script: 'models' }));
  let manifest: ModelManifest;
  try {
    manifest = await publishFolder(await stores.models(), folder);
  } finally {
    await stores.close();
  }
  const res = await api<{ created: boolean }>(config, 'POST', 'admin/models', { manifest });
  return { manifest, created: res.created };
}

interface Coverage {
  tenantId: string;
  chunks: number;
  vectors: number;
  coverage: number;
}

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      json: { type: 'boolean', default: false },
      alias: { type: 'string' },
      version: { type: 'string' },
      kind: { type: 'string' },
      name: { type: 'string' },
      license: { type: 'string' },
      engine: { type: 'string', default: 'onnx' },
      dimension: { type: 'string' },
      pooling: { type: 'string' },
      'no-normalize': { type: 'boolean', default: false },
      'max-tokens': { type: 'string' },
      'query-prefix': { type: 'string' },
      'passage-prefix': { type: 'string' },
      precision: { type: 'string', default: 'fp32' },
      model: { type: 'string', default: 'model.onnx' },
      tokenizer: { type: 'string', default: 'tokenizer.json' },
      'tokenizer-config': { type: 'string' },
      config: { type: 'string', default: 'config.json' },
      languages: { type: 'string', default: 'eng+rus' },
      'created-at': { type: 'string' },
      onnx: { type: 'string' },
      out: { type: 'string' },
      yes: { type: 'boolean', default: false },
      publish: { type: 'boolean', default: false },
      tenant: { type: 'string' },
      query: { type: 'string', multiple: true },
      force: { type: 'boolean', default: false },
      wait: { type: 'boolean', default: false },
      follow: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const [command, ...args] = positionals;
  if (values.help || !command) {
    console.log(USAGE);
    return values.help ? 0 : 2;
  }
  const cli: Cli = {
    json: values.json!,
    out(human, data) {
      console.log(this.json ? JSON.stringify(data) : human);
    },
  };
  const need = (n: number, usage: string) => {
    if (args.length < n) throw new ApiError(0, 'USAGE', `usage: npm run models -- ${usage}`);
    return args;
  };
  const config = () => loadConfig();

  switch (command) {
    case 'build': {
      const folder = path.resolve(need(1, 'build <folder> --alias A --version V --kind K')[0]!);
      const kind = values.kind as ModelKind;
      if (!values.alias || !values.version || !MODEL_KINDS.includes(kind)) throw new ApiError(0, 'USAGE', 'build needs --alias, --version and --kind');
      let embed: EmbedSpec | undefined;
      if (kind === 'embed') {
        const common = {
          dimension: Number(values.dimension),
          maxTokens: Number(values['max-tokens'] ?? 512),
          queryPrefix: values['query-prefix'] ?? '',
          passagePrefix: values['passage-prefix'] ?? '',
        };
        embed =
          values.engine === 'hashed-ngrams'
            ? { engine: 'hashed-ngrams', normalize: true, config: values.config!, ...common }
            : {
                engine: 'onnx',
                pooling: (values.pooling ?? 'mean') as 'mean' | 'cls',
                normalize: !values['no-normalize'],
                precision: values.precision as 'fp32' | 'int8',
                model: values.model!,
                tokenizer: values.tokenizer!,
                ...(values['tokenizer-config'] ? { tokenizerConfig: values['tokenizer-config'] } : {}),
                ...common,
              };
      }
      const manifest = await buildManifest(folder, {
        name: values.name ?? values.alias,
        alias: values.alias,
        version: values.version,
        kind,
        ...(values.license ? { license: values.license } : {}),
        ...(values['created-at'] ? { createdAt: values['created-at'] } : {}),
        ...(embed ? { embed } : {}),
        ...(kind === 'ocr' ? { ocr: { engine: 'tesseract' as const, languages: values.languages!.split('+') } } : {}),
      });
      await writeManifest(folder, manifest);
      cli.out(`wrote ${path.join(folder, 'manifest.json')}: ${describe(manifest)}`, manifest);
      return 0;
    }

    case 'verify': {
      const folder = path.resolve(need(1, 'verify <folder>')[0]!);
      const manifest = await readManifest(folder);
      const problems = await verifyFolder(folder, manifest);
      for (const p of problems) {
        console.error(`MISMATCH ${p.path}: ${p.reason}; manifest sha256 ${p.expected.sha256} (${p.expected.size} bytes), file ${p.actual ? `${p.actual.sha256} (${p.actual.size} bytes)` : 'missing'}`);
      }
      if (problems.length === 0) cli.out(`ok ${describe(manifest)}`, { ok: true, manifest });
      return problems.length === 0 ? 0 : 1;
    }

    case 'import': {
      const source = path.resolve(need(1, 'import <folder|file.gguf> [--alias A] [--version V] …')[0]!);
      const given: ImportAnswers = {
        ...(values.alias ? { alias: values.alias } : {}),
        ...(values.version ? { version: values.version } : {}),
        ...(values.name ? { name: values.name } : {}),
        ...(values.license ? { license: values.license } : {}),
        ...(values.onnx ? { onnx: values.onnx } : {}),
        ...(values.dimension ? { dimension: Number(values.dimension) } : {}),
        ...(values.pooling ? { pooling: values.pooling as 'mean' | 'cls' } : {}),
        ...(values['max-tokens'] ? { maxTokens: Number(values['max-tokens']) } : {}),
        ...(values['query-prefix'] !== undefined ? { queryPrefix: values['query-prefix'] } : {}),
        ...(values['passage-prefix'] !== undefined ? { passagePrefix: values['passage-prefix'] } : {}),
        ...(values['no-normalize'] ? { normalize: false } : {}),
      };
      const plan = await planImport(source, given);
      if (!cli.json) for (const f of plan.found) console.error(`  ${f.field} = ${JSON.stringify(f.value)}   (${f.from})`);
      await ask(plan, !values.yes && process.stdin.isTTY === true);
      const cfg = config();
      const out = path.resolve(values.out ?? path.join(path.dirname(cfg.models.cacheDir), 'models-import', plan.answers.alias!, plan.answers.version!));
      const manifest = await buildImport(plan, out);
      let published: boolean | null = null;
      if (values.publish) published = (await publish(cfg, out)).created;
      cli.out(
        `built ${describe(manifest)} in ${out} (verified${manifest.kind === 'embed' ? `, ${manifest.embed!.dimension} dims checked by one inference` : ''})${published === null ? `\nnext: npm run models -- publish ${out}` : `\npublished ${manifest.alias}@${manifest.version}${published ? '' : ' (already registered, same files)'}`}`,
        { folder: out, manifest, published },
      );
      return 0;
    }

    case 'publish': {
      const folder = path.resolve(need(1, 'publish <folder>')[0]!);
      const cfg = config();
      const { manifest, created } = await publish(cfg, folder);
      cli.out(`published ${describe(manifest)}${created ? '' : ' (already registered, same files)'}; not active: npm run models -- switch ${manifest.alias} ${manifest.version}`, { alias: manifest.alias, version: manifest.version, kind: manifest.kind, created });
      return 0;
    }

    case 'list': {
      const list = await api<Array<{ alias: string; kind: string; activeVersion: string | null; previousVersion: string | null; versions: Array<{ version: string }> }>>(config(), 'GET', 'admin/models');
      const lines = list.map((m) => {
        const versions = m.versions.map((v) => (v.version === m.activeVersion ? `*${v.version}` : v.version === m.previousVersion ? `${v.version} (previous)` : v.version));
        return `${m.alias.padEnd(20)} ${m.kind.padEnd(7)} ${versions.join(', ')}`;
      });
      cli.out(['ALIAS                KIND    VERSIONS (* active)', ...lines].join('\n'), list);
      return 0;
    }

    case 'status': {
      const cfg = config();
      const alias = args[0];
      const status = await api<{
        reindexes: Array<{ alias: string; version: string; tenantId: string; state: string; done: number; total: number; progress: number; pass: string; error: string | null }>;
        coverage: Array<{ alias: string; version: string; role: string; tenants: Coverage[] }>;
      }>(cfg, 'GET', `admin/models/status${alias ? `?alias=${encodeURIComponent(alias)}` : ''}`);
      const lines: string[] = [];
      for (const c of status.coverage) {
        lines.push(`${c.alias}@${c.version} (${c.role}): ${c.tenants.length === 0 ? 'no chunks yet' : c.tenants.map((t) => `${t.tenantId} ${pct(t.coverage)} (${t.vectors}/${t.chunks})`).join(', ')}`);
      }
      for (const r of status.reindexes) {
        lines.push(`reindex ${r.alias}@${r.version} ${r.tenantId}: ${r.state} ${r.done}/${r.total} (${pct(r.progress)}, ${r.pass} pass)${r.error ? ` — ${r.error}` : ''}`);
      }
      cli.out(lines.join('\n') || 'nothing to report', status);
      if (values.follow) await follow(cfg, alias, cli);
      return 0;
    }

    case 'reindex': {
      const [alias, version] = need(2, 'reindex ALIAS VERSION [--tenant T] [--wait]');
      const cfg = config();
      const res = await api<{ started: Array<{ tenantId: string; total: number; done: number }> }>(cfg, 'POST', `admin/models/${enc(alias!)}/${enc(version!)}/reindex`, values.tenant ? { tenantId: values.tenant } : {});
      cli.out(`re-index of ${alias}@${version} started for ${res.started.length} tenant(s): ${res.started.map((s) => `${s.tenantId} (${s.total} chunks)`).join(', ') || 'none has chunks'}\nfollow: npm run models -- status ${alias} --follow`, res);
      if (values.wait) return waitReindex(cfg, alias!, version!, cli);
      return 0;
    }

    case 'cancel': {
      const [alias, version] = need(2, 'cancel ALIAS VERSION [--tenant T]');
      const res = await api<{ canceled: number }>(config(), 'POST', `admin/models/${enc(alias!)}/${enc(version!)}/reindex/cancel`, values.tenant ? { tenantId: values.tenant } : {});
      cli.out(`canceled ${res.canceled} running re-index(es) of ${alias}@${version}`, res);
      return 0;
    }

    case 'coverage': {
      const [alias, version] = need(2, 'coverage ALIAS VERSION');
      const res = await api<{ tenants: Coverage[] }>(config(), 'GET', `admin/models/${enc(alias!)}/${enc(version!)}/coverage`);
      cli.out(res.tenants.map((t) => `${t.tenantId}: ${pct(t.coverage)} (${t.vectors}/${t.chunks})`).join('\n') || 'no tenant has chunks', res);
      return 0;
    }

    case 'compare': {
      const [alias, v1, v2] = need(3, 'compare ALIAS V1 V2 --tenant T [--query Q]...');
      if (!values.tenant) throw new ApiError(0, 'USAGE', 'compare needs --tenant T');
      const res = await api<{ overlapAt10: number; latencyMs: Array<{ version: string; mean: number; p95: number }>; queries: Array<{ query: string; overlapAt10: number; ms: [number, number] }> }>(
        config(),
        'POST',
        `admin/models/${enc(alias!)}/compare`,
        { v1, v2, tenantId: values.tenant, ...(values.query?.length ? { queries: values.query } : {}) },
      );
      const lines = res.queries.map((q) => `  ${pct(q.overlapAt10).padStart(7)}  ${q.ms[0].toFixed(1).padStart(7)} ms  ${q.ms[1].toFixed(1).padStart(7)} ms  ${q.query.slice(0, 60)}`);
      cli.out(
        [`${alias}: ${v1} vs ${v2} on ${res.queries.length} queries`, `overlap@10 ${pct(res.overlapAt10)}`, ...res.latencyMs.map((l) => `${l.version}: mean ${l.mean} ms, p95 ${l.p95} ms`), '  overlap  latency ' + v1 + '  latency ' + v2, ...lines].join('\n'),
        res,
      );
      return 0;
    }

    case 'switch': {
      const [alias, version] = need(2, 'switch ALIAS VERSION [--force]');
      const res = await api<{ from: string | null; to: string; coverage?: Coverage[]; forced?: boolean; warmedOn: string }>(config(), 'POST', `admin/models/${enc(alias!)}/switch`, { version, ...(values.force ? { force: true } : {}) });
      const cov = res.coverage?.length ? `; coverage ${res.coverage.map((t) => `${t.tenantId} ${pct(t.coverage)}`).join(', ')}` : '';
      cli.out(`${alias}: ${res.from ?? '(none)'} → ${res.to}${res.forced ? ' (FORCED below 100 % coverage, audited)' : ''}; warmed on ${res.warmedOn}${cov}`, res);
      return 0;
    }

    case 'rollback': {
      const [alias] = need(1, 'rollback ALIAS');
      const res = await api<{ from: string | null; to: string }>(config(), 'POST', `admin/models/${enc(alias!)}/rollback`, {});
      cli.out(`${alias}: rolled back ${res.from} → ${res.to}`, res);
      return 0;
    }

    case 'delete': {
      const [alias, version] = need(2, 'delete ALIAS VERSION');
      const res = await api<{ droppedCollection: string | null }>(config(), 'DELETE', `admin/models/${enc(alias!)}/${enc(version!)}`);
      cli.out(`deleted ${alias}@${version}${res.droppedCollection ? `; dropped collection ${res.droppedCollection}` : ''}`, res);
      return 0;
    }

    default:
      console.error(USAGE);
      return 2;
  }
}

const enc = encodeURIComponent;

/** Polls status until every tenant's re-index of alias@version has ended; exit 1 if one failed or was canceled. */
async function waitReindex(config: Config, alias: string, version: string, cli: Cli): Promise<number> {
  let last = '';
  for (;;) {
    const status = await api<{ reindexes: Array<{ alias: string; version: string; tenantId: string; state: string; done: number; total: number }> }>(config, 'GET', `admin/models/status?alias=${enc(alias)}`);
    const mine = status.reindexes.filter((r) => r.version === version);
    const line = mine.map((r) => `${r.tenantId} ${r.state} ${r.done}/${r.total}`).join(', ');
    if (line !== last && !cli.json) console.error(line);
    last = line;
    if (mine.every((r) => r.state !== 'running')) {
      const ok = mine.every((r) => r.state === 'done');
      cli.out(`re-index of ${alias}@${version} ${ok ? 'done' : 'ended'}: ${line}`, { done: ok, reindexes: mine });
      return ok ? 0 : 1;
    }
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

/** Streams re-index progress (SSE) until interrupted. */
async function follow(config: Config, alias: string | undefined, cli: Cli): Promise<void> {
  const base = (process.env.RAGMESH_URL ?? `http://127.0.0.1:${config.http.port}`).replace(/\/+$/, '');
  const token = process.env.RAGMESH_TOKEN ?? (await signAccessToken({ tenantId: 'ops', userId: 'models-cli', roles: ['admin'] }, await resolveJwtSecret(config), { issuer: config.auth.issuer, ttlSeconds: 3600 }));
  const res = await fetch(`${base}/api/v1/admin/models/events${alias ? `?alias=${enc(alias)}` : ''}`, { headers: { authorization: `Bearer ${token}` } });
  if (!res.ok || !res.body) throw new ApiError(res.status, 'SSE', `cannot follow: HTTP ${res.status}`);
  const decoder = new TextDecoder();
  let buffered = '';
  const reader = res.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    buffered += decoder.decode(value, { stream: true });
    let end: number;
    while ((end = buffered.indexOf('\n\n')) >= 0) {
      const block = buffered.slice(0, end);
      buffered = buffered.slice(end + 2);
      const event = /^event: (.*)$/m.exec(block)?.[1];
      const data = /^data: (.*)$/m.exec(block)?.[1];
      if (event !== 'progress' || !data) continue;
      const p = JSON.parse(data) as { alias: string; version: string; tenantId: string; state: string; done: number; total: number };
      cli.out(`${p.alias}@${p.version} ${p.tenantId}: ${p.state} ${p.done}/${p.total}`, p);
    }
  }
}

function describe(m: ModelManifest): string {
  const bytes = m.files.reduce((sum, f) => sum + f.size, 0);
  return `${m.alias}@${m.version} (${m.kind}, ${m.files.length} files, ${(bytes / 1e6).toFixed(1)} MB)`;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof ApiError) {
      const cov = (err.data as { coverage?: Coverage[] } | undefined)?.coverage;
      console.error(`${err.code}: ${err.message}`);
      if (cov && !process.argv.includes('--json')) for (const t of cov) console.error(`  ${t.tenantId}: ${pct(t.coverage)} (${t.vectors}/${t.chunks})`);
      if (process.argv.includes('--json')) console.log(JSON.stringify({ error: { code: err.code, status: err.status, message: err.message, data: err.data ?? null } }));
      process.exit(err.status === 0 && err.code === 'USAGE' ? 2 : 1);
    }
    if (err instanceof ImportRefused) {
      console.error(`import refused: ${err.message}`);
      process.exit(1);
    }
    console.error((err as Error).message);
    process.exit(1);
  },
);
