import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ConfigError } from '../errors.ts';
import { parseCron } from '../backup/cron.ts';
import { DEFAULT_RATE_LIMITS, parseRateLimits, type RateLimitSettings } from '../auth/rate-limit.ts';

/**
 * The one place that reads process.env. Every variable is declared here with its
 * default and meaning; `loadConfig` checks all of them and reports every problem at
 * once, so an operator fixes a broken deployment in one round, not ten.
 * `npm run docs:config` renders this table into docs/config.md.
 */

export const SERVICE_NAMES = ['api', 'emb', 'llm', 'ingest', 'analyze', 'maintenance'] as const;
export type ServiceName = (typeof SERVICE_NAMES)[number];

export type Profile = 'embedded' | 'mesh';

type Env = Record<string, string | undefined>;

interface VarSpec {
  name: string;
  doc: string;
  /** Shown in the docs; a function gets the profile for defaults that differ per profile. */
  default?: string | ((profile: Profile) => string | undefined);
  defaultDoc?: string;
  secret?: boolean;
}

export const VARIABLES: VarSpec[] = [
  { name: 'RAGMESH_PROFILE', default: 'embedded', doc: '`embedded` (one process, embedded stores under DATA_DIR) or `mesh` (real Postgres, Redis, S3, Qdrant; RabbitMQ transporter). Sets the defaults of the *_DRIVER variables.' },
  { name: 'SERVICES', default: SERVICE_NAMES.join(','), doc: 'Comma-separated services this process runs: any of api, emb, llm, ingest, analyze, maintenance.' },
  { name: 'TRANSPORTER', doc: 'Moleculer transporter URL, `amqp://user:pass@host:5672/vhost` (or amqps://). Empty = no transporter (all services in one process). Required in the mesh profile.', secret: true },
  { name: 'NAMESPACE', default: 'ragmesh', doc: 'Moleculer namespace: nodes only see nodes of the same namespace on one transporter.' },
  { name: 'NODE_ID', doc: 'Moleculer node id; default `<hostname>-<pid>`.' },
  { name: 'HOST', default: (p) => (p === 'mesh' ? '0.0.0.0' : '127.0.0.1'), defaultDoc: '127.0.0.1 (embedded), 0.0.0.0 (mesh)', doc: 'Address the api listens on.' },
  { name: 'PORT', default: '3000', doc: 'Port of the api (REST, SSE, /healthz, /readyz).' },
  { name: 'HEALTH_PORT', default: '0', doc: 'Port of the /healthz and /readyz endpoints of a process that does not run the api (0 = none).' },
  { name: 'DATA_DIR', default: './data', doc: 'Where the embedded profile keeps its database, objects and generated secrets.' },
  { name: 'DB_DRIVER', default: (p) => (p === 'mesh' ? 'pg' : 'pglite'), defaultDoc: 'pglite (embedded), pg (mesh)', doc: '`pglite` (PGlite in-process, data under DATA_DIR/pg) or `pg` (PostgreSQL at DATABASE_URL).' },
  { name: 'DATABASE_URL', doc: 'PostgreSQL URL, `postgres://user:pass@host:5432/db`. Required when DB_DRIVER=pg.', secret: true },
  { name: 'PGLITE_THREAD', default: 'main', doc: '`main` (PGlite runs on the thread that calls it) or `worker` (on a thread of its own, beside the api\'s). Measured on 2 cores, `worker` cost ~1–2 ms more CPU a search and served no more searches under load (docs/search.md). DB_DRIVER=pglite only.' },
  { name: 'DB_POOL_MAX', default: '10', doc: 'Largest PostgreSQL connection pool per process (pg driver).' },
  { name: 'MIGRATE_ON_START', default: 'true', doc: 'Run pending knex migrations at boot (`npm run migrate` does it by hand).' },
  { name: 'KV_DRIVER', default: (p) => (p === 'mesh' ? 'redis' : 'memory'), defaultDoc: 'memory (embedded), redis (mesh)', doc: '`memory` (in-process cache, locks, rate limits, idempotency keys) or `redis`.' },
  { name: 'REDIS_URL', doc: 'Redis URL, `redis://host:6379/0`. Required when KV_DRIVER=redis.', secret: true },
  { name: 'KV_PREFIX', default: 'ragmesh:', doc: 'Prefix of every key ragmesh writes to Redis.' },
  { name: 'OBJECTS_DRIVER', default: (p) => (p === 'mesh' ? 's3' : 'fs'), defaultDoc: 'fs (embedded), s3 (mesh)', doc: '`fs` (files under DATA_DIR/objects) or `s3` (MinIO or any S3 API at S3_ENDPOINT).' },
  { name: 'S3_ENDPOINT', doc: 'S3 endpoint URL, `http://minio:9000`. Required when OBJECTS_DRIVER=s3.' },
  { name: 'S3_ACCESS_KEY', doc: 'S3 access key. Required when OBJECTS_DRIVER=s3.', secret: true },
  { name: 'S3_SECRET_KEY', doc: 'S3 secret key. Required when OBJECTS_DRIVER=s3.', secret: true },
  { name: 'S3_REGION', default: 'us-east-1', doc: 'S3 region.' },
  { name: 'S3_BUCKET', default: 'ragmesh', doc: 'Bucket for uploads and artifacts.' },
  { name: 'S3_MODELS_BUCKET', default: 'models', doc: 'Bucket for model files and their manifest.json.' },
  { name: 'VECTORS_DRIVER', default: (p) => (p === 'mesh' ? 'qdrant' : 'usearch'), defaultDoc: 'usearch (embedded), qdrant (mesh)', doc: '`usearch` (pgvector in the database as the record plus an in-memory HNSW index per tenant; one process only, so the embedded default), `pgvector` (in the database of DB_DRIVER; PGlite ships it), `postgres` (plain arrays in the database of DB_DRIVER, exact and slow: for PostgreSQL without pgvector, small deployments and mesh tests) or `qdrant`.' },
  { name: 'QDRANT_URL', doc: 'Qdrant REST URL, `http://qdrant:6333`. Required when VECTORS_DRIVER=qdrant.' },
  { name: 'QDRANT_API_KEY', doc: 'Qdrant API key, if the server wants one.', secret: true },
  { name: 'QUEUE_DRIVER', default: (p) => (p === 'mesh' ? 'amqp' : 'memory'), defaultDoc: 'memory (embedded), amqp (mesh)', doc: '`memory` (in-process job queue; the job rows in the database are re-queued at boot) or `amqp` (RabbitMQ durable queues with dead-lettering).' },
  { name: 'QUEUE_URL', doc: 'RabbitMQ URL of the job queues, `amqp://user:pass@host:5672/vhost`. Required when QUEUE_DRIVER=amqp (usually the same broker as TRANSPORTER).', secret: true },
  { name: 'QUEUE_HEARTBEAT_S', default: '5', doc: 'AMQP heartbeat of the job queue connection, in seconds. A link that silently stops carrying packets (a partition, a dropped NAT entry) is found dead within about twice this and the connection is opened again; with RabbitMQ\'s own 60 s a worker sat on a dead connection for up to two minutes. 0 takes the broker\'s value.' },
  { name: 'QUEUE_PREFIX', default: 'ragmesh', doc: 'Prefix of the RabbitMQ exchanges and queues of the job queues.' },
  { name: 'JOB_MAX_ATTEMPTS', default: '5', doc: 'Attempts of a job step before its message goes to the dead-letter queue.' },
  { name: 'JOB_BACKOFF_MS', default: '1000', doc: 'First retry delay of a failed job; each further retry waits 4× longer (capped at 10 minutes).' },
  { name: 'JOB_OUTAGE_PATIENCE_MS', default: '900000', doc: 'How long a job waits out an outage of a dependency (PostgreSQL, Redis, S3, RabbitMQ, a service restarting) without spending its attempts: such failures are retried with a backoff capped at 30 s and give their attempt back. Past this, they count like any other failure.' },
  { name: 'JOB_LEASE_MS', default: '30000', doc: 'A running job\'s lease: its worker renews it every third of this while it works; once it lapses (the worker died or lost the database) a redelivery or the maintenance sweeper takes the job over.' },
  { name: 'JOB_SWEEP_INTERVAL_MS', default: '60000', doc: 'How often the maintenance service sweeps jobs: expired leases re-queued or failed, queued jobs without a message re-published, messages RabbitMQ dead-lettered by itself reconciled with their rows.' },
  { name: 'JOB_STALE_AFTER_MS', default: '600000', doc: 'A queued job whose message was due this long ago is taken to have lost it, and its message is published again (a duplicate is harmless).' },
  { name: 'INGEST_CONCURRENCY', default: '4', doc: 'Jobs one ingest process works on at once (the queue prefetch).' },
  { name: 'UPLOAD_MAX_BYTES', default: '104857600', doc: 'Largest accepted upload in bytes (100 MiB); larger ones get 413 and nothing is kept.' },
  { name: 'UPLOAD_MAX_FILES', default: '10', doc: 'Files accepted in one multipart upload request.' },
  { name: 'CHUNK_TARGET_TOKENS', default: '256', doc: 'Target size of a chunk in tokens.' },
  { name: 'CHUNK_OVERLAP_TOKENS', default: '32', doc: 'Tokens repeated between consecutive chunks of a page.' },
  { name: 'SEARCH_LEG_TIMEOUT_MS', default: '2000', doc: 'How long search waits for each leg (lexical, dense incl. embedding the query); a leg that fails or takes longer is dropped and the answer says `degraded`.' },
  { name: 'SEARCH_EMBED_FLOOR_MS', default: '400', doc: 'Least time a hybrid search waits for its query embedding once the api has seen 5 of them: the wait is 5× their recent p95, at least this, at most SEARCH_EMBED_TIMEOUT_MS. When emb vanishes (killed, partitioned) a search gives up after this instead of the whole leg timeout, and answers lexical-only (`degraded`).' },
  { name: 'SEARCH_EMBED_TIMEOUT_MS', default: '700', doc: 'Most time a hybrid search waits for its query embedding (also the wait before the api has seen 5 of them); capped by SEARCH_LEG_TIMEOUT_MS. A hybrid search has its lexical leg to answer with, so it answers within about a second even when emb is gone; raise this where query embeddings are slow (a large model on busy CPUs). A dense-only search (no lexical leg to fall back on) waits up to SEARCH_LEG_TIMEOUT_MS.' },
  { name: 'SEARCH_CANDIDATES', default: '100', doc: 'Hits each search leg contributes to Reciprocal Rank Fusion (at least the requested limit).' },
  { name: 'SEARCH_CONCURRENCY', defaultDoc: '1 (DB_DRIVER=pglite), 4 (pg)', doc: 'Searches one api process runs at once (RAG retrieval included); more wait in a queue (SEARCH_QUEUE_WAIT_MS, SEARCH_QUEUE_LIMIT). PGlite runs one statement at a time on the api\'s own thread, so more than 1 only queues inside PGlite, where admission control cannot see it; with PostgreSQL, sized from bench:search-load (docs/search.md).' },
  { name: 'SEARCH_QUEUE_LIMIT', default: '32', doc: 'Most searches waiting for a turn, whatever their expected wait; beyond that a search is refused at once with 503 OVERLOADED and Retry-After.' },
  { name: 'SEARCH_QUEUE_WAIT_MS', default: '1000', doc: 'Longest a search waits for its turn: one whose expected wait (waiting searches × the measured time a search takes ÷ SEARCH_CONCURRENCY) is longer is refused at once with 503 OVERLOADED and a Retry-After from the same measurement, and one that has waited this long is refused then — instead of waiting into the leg timeout.' },
  { name: 'SEARCH_LEXICAL_MEMORY_MB', default: '256', doc: 'Memory each api process may give to tenants\' postings for plain-word lexical searches (the same exact BM25, summed in memory instead of in SQL; docs/search.md). A tenant is held once searched, rebuilt in the background after its chunks change (searches read SQL meanwhile), dropped least recently used first; one larger than this is never held. 0 = always SQL.' },
  { name: 'SEARCH_LEXICAL_POSTINGS', default: '20000', doc: 'Candidate budget of lexical searches with filters, phrases or exclusions (plain-word searches read the posting table and are exact whatever the size): the query words that can still lift a chunk into the top recruit candidates while they occur in at most this many chunks together; beyond it the commonest of them only score (bounds latency on large tenants).' },
  { name: 'LLM_BACKEND', default: 'extractive', doc: '`extractive` (offline default, no weights: answers with the best-matching sentences of the sources, cited), `llama` (a GGUF model from the models bucket, alias LLM_MODEL, run on CPU by node-llama-cpp) or `openai` (an OpenAI-compatible server inside your network: vLLM, llama.cpp server, Ollama).' },
  { name: 'LLM_URL', doc: 'Base URL of the OpenAI-compatible server, `http://vllm:8000/v1`. Required when LLM_BACKEND=openai.' },
  { name: 'LLM_MODEL', default: 'default', doc: 'With `openai`: the model name sent to the server. With `llama`: the alias of an `llm` model in the models bucket (its active version is loaded after its SHA-256 checks out; `models.switched` loads a new one).' },
  { name: 'LLM_API_KEY', doc: 'Bearer key for the OpenAI-compatible server, if it wants one.', secret: true },
  { name: 'LLM_CONCURRENCY', default: '2', doc: 'Generations one llm process runs at once.' },
  { name: 'LLM_QUEUE_LIMIT', default: '16', doc: 'Generations waiting for a slot; beyond that callers get 503 OVERLOADED with Retry-After.' },
  { name: 'LLM_CONTEXT_SIZE', default: '4096', doc: 'With `llama`: the context window in tokens of each generation slot (prompt, sources and answer together; sources are cut to fit).' },
  { name: 'LLM_THREADS', default: '0', doc: 'With `llama`: CPU threads for generation; 0 = timed at model load: a short generation at each count up to the CPUs the process may use (affinity, cgroup quota), the fastest kept for reading prompts and the fastest for making tokens, apart, and timed again while serving when answers run over twice as slow as that trial, or twice as fast (docs/sse.md).' },
  { name: 'CHAT_STREAMS_PER_USER', default: '3', doc: 'Answers one user may have running at once (chat answers and /v1/chat/completions, streamed or not), counted in the KV store across every api replica; the next gets 429 TOO_MANY_STREAMS.' },
  { name: 'CHAT_STREAMS_PER_TENANT', default: '30', doc: 'Answers all users of one tenant may have running at once (chat answers and /v1/chat/completions), counted across every api replica as leases that a crashed replica loses within a minute; the next gets 429 TOO_MANY_STREAMS. 0 = no tenant cap.' },
  { name: 'LLM_MAX_TOKENS', default: '512', doc: 'Largest number of tokens one answer may generate (a request may ask for fewer).' },
  { name: 'JWT_SECRET', doc: 'HS256 secret (at least 32 characters) for existing setups: when set, HS256 tokens signed with it are accepted, and `npm run token` signs with it if no signing keyset exists. The embedded profile keeps one in DATA_DIR/secrets/jwt-secret (it also signs the filesystem store\'s upload URLs). The mesh needs JWT_SECRET or JWT_KEYS_FILE.', secret: true },
  { name: 'JWT_KEYS_FILE', defaultDoc: 'DATA_DIR/secrets/signing-keys.json', doc: 'The signing keyset (JSON; EdDSA keys with kid: one active, one next, retiring ones until their tokens expire). In the mesh a Swarm secret; `npm run keys -- rotate` writes the next version. The embedded profile creates it on first start.' },
  { name: 'JWT_AUDIENCE', default: 'ragmesh', doc: 'The `aud` every signed token must carry.' },
  { name: 'RATE_LIMIT_WINDOW_MS', default: '60000', doc: 'The sliding window of the rate limits.' },
  { name: 'RATE_LIMIT_PER_USER', defaultDoc: Object.entries(DEFAULT_RATE_LIMITS.perUser).map(([k, v]) => `${k}=${v}`).join(','), doc: 'Requests one user may make per window per class of route (read, search, chat, upload, admin, openai), as `class=n,…` over the defaults; 0 = unlimited. Past it: 429 RATE_LIMITED with Retry-After.' },
  { name: 'RATE_LIMIT_PER_TENANT', defaultDoc: Object.entries(DEFAULT_RATE_LIMITS.perTenant).map(([k, v]) => `${k}=${v}`).join(','), doc: 'Requests all users of one tenant may make together per window per class, as `class=n,…` over the defaults; 0 = unlimited.' },
  { name: 'EVENT_STREAMS_PER_TENANT', default: '200', doc: 'Event streams (job, document and model events) all users of one tenant may hold open at once across every api replica (leases, as CHAT_STREAMS_PER_TENANT); the next gets 429 TOO_MANY_STREAMS. 0 = no tenant cap.' },
  { name: 'EVENT_STREAMS_PER_USER', default: '8', doc: 'Event streams (SSE: job events, document events, model events) one user may hold open at once across every api replica; the next gets 429 TOO_MANY_STREAMS.' },
  { name: 'JWT_ISSUER', default: 'ragmesh', doc: 'The `iss` every token must carry.' },
  { name: 'JWT_TTL_SECONDS', default: '86400', doc: 'Lifetime of tokens printed by `npm run token`.' },
  { name: 'AUTH_CACHE_ENTRIES', default: '10000', doc: 'Verified credentials (tokens, API keys) one api process keeps, keyed by their SHA-256, so a repeated credential is not verified again; a token is kept until its exp, an API key for API_KEY_CACHE_MS.' },
  { name: 'API_KEY_CACHE_MS', default: '5000', doc: 'How long an api process trusts an API key it read without reading it again. A revocation or role change evicts the key at once on every replica that hears the broadcast; this bounds the delay on one that missed it.' },
  { name: 'REQUEST_TIMEOUT_MS', default: '30000', doc: 'Default timeout of a service call.' },
  { name: 'METRICS', default: 'true', doc: 'Serve Prometheus metrics at /metrics (the api\'s port, or HEALTH_PORT) and record them. `false` turns recording off (bench:metrics measures the cost).' },
  { name: 'LOG_LEVEL', default: 'info', doc: 'fatal, error, warn, info, debug or trace. Logs are JSON lines on stdout.' },
  { name: 'BUILD_COMMIT', doc: 'Commit shown by /api/version; read from .git when unset.' },
  { name: 'MODELS_CACHE_DIR', defaultDoc: 'DATA_DIR/models-cache', doc: 'Local folder model files are copied to from the models bucket and verified (size + SHA-256) before loading.' },
  { name: 'EMB_MODELS', doc: 'Comma-separated embedding aliases this emb node serves. Empty = every alias with an active embed version.' },
  { name: 'EMB_THREADS', default: '2', doc: 'ONNX Runtime intra-op threads of each embedding model session.' },
  { name: 'EMB_MAX_BATCH', default: '32', doc: 'Most texts in one model call; concurrent callers are batched up to this.' },
  { name: 'EMB_QUEUE_LIMIT', default: '1024', doc: 'Texts accepted and not yet answered per model; past it emb.embed fails fast with the retryable OVERLOADED error (503 + Retry-After). Also the most texts in one call.' },
  { name: 'EMB_BACKGROUND_BATCH', default: '8', doc: 'Most re-index texts in one model call; smaller than EMB_MAX_BATCH so a query arriving meanwhile waits less (queries and ingest always go first).' },
  { name: 'EMB_BACKGROUND_THREADS', default: '2', doc: 'ONNX Runtime intra-op threads of the second session a model opens, on a worker thread of its own, for re-index batches (closed after a minute without them).' },
  { name: 'EMB_BACKGROUND_NICE', default: '10', doc: 'Nice value (0–19) of that thread and its ONNX Runtime threads: when a query and a re-index batch both want a core, the kernel runs the query. 0 = same priority as queries.' },
  { name: 'REINDEX_BATCH', default: '32', doc: 'Chunks a re-index worker reads, embeds and stores per step (its cursor advances per step).' },
  { name: 'OCR_ENABLED', default: 'true', doc: 'false turns OCR off for this deployment: pages without a text layer (scanned PDF pages, images) are not read; the document lists them in `pagesWithoutText`, and a file with no text at all fails with NO_TEXT.' },
  { name: 'OCR_WORKERS', default: '1', doc: 'Tesseract workers in the OCR pool of a process (each takes about 100 MB and one core while busy).' },
  { name: 'OCR_QUEUE_LIMIT', default: '16', doc: 'Images waiting for OCR per process; past it the OCR action fails with the retryable OVERLOADED error.' },
  { name: 'OCR_LANGUAGES', default: 'eng+rus', doc: 'Tesseract languages recognized together, joined with +; each needs a traineddata file in the ocr model.' },
  { name: 'BACKUP_DRIVER', defaultDoc: 'as OBJECTS_DRIVER', doc: 'Where backups go: `fs` (the folder BACKUP_DIR) or `s3` (the bucket BACKUP_BUCKET on S3_ENDPOINT).' },
  { name: 'BACKUP_DIR', defaultDoc: 'DATA_DIR/backups', doc: 'Folder of backups when BACKUP_DRIVER=fs. Keep it on another disk than DATA_DIR.' },
  { name: 'BACKUP_BUCKET', default: 'ragmesh-backups', doc: 'Bucket of backups when BACKUP_DRIVER=s3.' },
  { name: 'BACKUP_SCHEDULE', doc: 'When the maintenance service takes a backup, in 5-field cron syntax, UTC (e.g. `0 3 * * *` for 03:00 daily). Empty = no scheduled backups.' },
  { name: 'BACKUP_KEEP_DAILY', default: '7', doc: 'Scheduled backups keep the newest backup of each of this many most recent days.' },
  { name: 'BACKUP_KEEP_WEEKLY', default: '4', doc: 'Scheduled backups also keep the newest backup of each of this many most recent ISO weeks.' },
  { name: 'ORPHAN_SWEEP_INTERVAL_MINUTES', default: '60', doc: 'How often the maintenance service sweeps orphans (uploads never completed, objects and vectors of deleted documents or old versions) and expired chats; 0 = never.' },
  { name: 'ORPHAN_MIN_AGE_HOURS', default: '24', doc: 'An upload or artifact no row refers to is removed once it is this old: presigned uploads get this long to be completed.' },
  { name: 'CHAT_RETENTION_DAYS', default: '0', doc: 'Chats untouched for this many days are deleted with their messages, unless the tenant sets its own retention; 0 = keep forever.' },
  { name: 'TESSDATA_DIR', default: '/usr/share/tesseract-ocr/5/tessdata', doc: 'Where Debian\'s tesseract-ocr-eng/-rus put traineddata; published once as the first ocr model version when the ocr alias has none.' },
];

export interface S3Config {
  endPoint: string;
  port: number;
  useSSL: boolean;
  accessKey: string;
  secretKey: string;
  region: string;
}

export interface Config {
  profile: Profile;
  services: ServiceName[];
  transporter: string | null;
  namespace: string;
  nodeId: string | null;
  /** The `MOL_*` variables, as given: Moleculer runner-style overrides of the broker options (moleculer.config.ts). */
  moleculerOverrides: Record<string, string>;
  http: { host: string; port: number };
  healthPort: number;
  dataDir: string;
  db: { driver: 'pglite' | 'pg'; url: string | null; poolMax: number; migrateOnStart: boolean; /** Absent: 'main'. */ pgliteThread?: 'worker' | 'main' };
  kv: { driver: 'memory' | 'redis'; url: string | null; prefix: string };
  objects: { driver: 'fs' | 's3'; s3: S3Config | null; bucket: string; modelsBucket: string };
  vectors: { driver: 'usearch' | 'pgvector' | 'postgres' | 'qdrant'; qdrantUrl: string | null; qdrantApiKey: string | null };
  queue: { driver: 'memory' | 'amqp'; url: string | null; prefix: string; heartbeatS: number; maxAttempts: number; backoffMs: number; leaseMs: number; outagePatienceMs: number; sweepIntervalMs: number; staleAfterMs: number };
  ingest: { concurrency: number; uploadMaxBytes: number; uploadMaxFiles: number; chunkTargetTokens: number; chunkOverlapTokens: number };
  search: { legTimeoutMs: number; embedFloorMs: number; embedTimeoutMs: number; candidates: number; lexicalPostings: number; lexicalMemoryBytes: number; concurrency: number; queueLimit: number; queueWaitMs: number };
  auth: { jwtSecret: string | null; keysFile: string; audience: string; issuer: string; ttlSeconds: number; cacheEntries: number; apiKeyCacheMs: number };
  rateLimits: RateLimitSettings;
  streams: { eventsPerUser: number; eventsPerTenant: number };
  llm: { backend: 'extractive' | 'llama' | 'openai'; url: string | null; model: string; apiKey: string | null; concurrency: number; queueLimit: number; maxTokens: number; contextSize: number; threads: number };
  chat: { streamsPerUser: number; streamsPerTenant: number };
  requestTimeoutMs: number;
  metrics: boolean;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace';
  buildCommit: string | null;
  models: ModelsConfig;
  backup: BackupConfig;
  sweep: SweepConfig;
}

export interface SweepConfig {
  /** 0 = never. */
  intervalMs: number;
  orphanMinAgeMs: number;
  chatRetentionDays: number;
}

export interface BackupConfig {
  driver: 'fs' | 's3';
  dir: string;
  bucket: string;
  /** 5-field cron, UTC; null = no scheduled backups. */
  schedule: string | null;
  keepDaily: number;
  keepWeekly: number;
}

export interface ModelsConfig {
  cacheDir: string;
  /** Empty = every active embed alias. */
  embAliases: string[];
  embThreads: number;
  embMaxBatch: number;
  embQueueLimit: number;
  embBackgroundBatch: number;
  embBackgroundThreads: number;
  embBackgroundNice: number;
  reindexBatch: number;
  /** OCR_ENABLED: false = pages without a text layer are marked, not read. */
  ocrEnabled: boolean;
  ocrWorkers: number;
  ocrQueueLimit: number;
  ocrLanguages: string[];
  tessdataDir: string;
}

/** Collects problems instead of throwing at the first, so all are reported together. */
class Reader {
  readonly problems: string[] = [];
  constructor(
    private readonly env: Env,
    private readonly profile: Profile,
  ) {}

  raw(name: string): string | undefined {
    const spec = VARIABLES.find((v) => v.name === name);
    if (!spec) throw new Error(`undeclared variable ${name}`);
    const value = this.env[name];
    if (value !== undefined && value.trim() !== '') return value.trim();
    return typeof spec.default === 'function' ? spec.default(this.profile) : spec.default;
  }

  fail(name: string, message: string): null {
    this.problems.push(`${name}: ${message}`);
    return null;
  }

  string(name: string): string | null {
    return this.raw(name) ?? null;
  }

  required(name: string, why: string): string | null {
    return this.raw(name) ?? this.fail(name, `is required ${why}`);
  }

  oneOf<T extends string>(name: string, allowed: readonly T[]): T | null {
    const value = this.raw(name);
    if (value !== undefined && (allowed as readonly string[]).includes(value)) return value as T;
    return this.fail(name, `must be one of ${allowed.join(', ')} (got "${value ?? ''}")`);
  }

  int(name: string, min: number, max: number): number | null {
    const value = this.raw(name);
    const n = Number(value);
    if (value !== undefined && /^-?\d+$/.test(value) && n >= min && n <= max) return n;
    return this.fail(name, `must be an integer from ${min} to ${max} (got "${value ?? ''}")`);
  }

  bool(name: string): boolean | null {
    const value = this.raw(name)?.toLowerCase();
    if (value === 'true' || value === '1' || value === 'yes') return true;
    if (value === 'false' || value === '0' || value === 'no') return false;
    return this.fail(name, `must be true or false (got "${value ?? ''}")`);
  }

  url(name: string, protocols: string[], value: string | null): URL | null {
    if (value === null) return null;
    let parsed: URL;
    try {
      parsed = new URL(value);
    } catch {
      return this.fail(name, `is not a valid URL (expected ${protocols.map((p) => `${p}//…`).join(' or ')})`);
    }
    if (!protocols.includes(parsed.protocol)) {
      return this.fail(name, `must use ${protocols.join(' or ')} (got ${parsed.protocol})`);
    }
    if (!parsed.hostname) return this.fail(name, 'has no host');
    return parsed;
  }
}

/**
 * Every secret variable X may instead be given as X_FILE, the path of a file holding
 * the value (Docker/Swarm secrets under /run/secrets). The file's content, without a
 * trailing newline, becomes X. Giving both is refused: which one wins would be a guess.
 */
export function resolveSecretFiles(env: Env, problems: string[], read: (file: string) => string = (f) => readFileSync(f, 'utf8')): Env {
  const out: Env = { ...env };
  for (const spec of VARIABLES) {
    if (!spec.secret) continue;
    const file = env[`${spec.name}_FILE`]?.trim();
    if (!file) continue;
    if (env[spec.name]?.trim()) {
      problems.push(`${spec.name}_FILE: cannot be set together with ${spec.name}; keep one`);
      continue;
    }
    try {
      out[spec.name] = read(file).replace(/\r?\n$/, '');
    } catch (err) {
      problems.push(`${spec.name}_FILE: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
  }
  return out;
}

export function loadConfig(givenEnv: Env = process.env): Config {
  const fileProblems: string[] = [];
  const env = resolveSecretFiles(givenEnv, fileProblems);
  const profileRaw = env.RAGMESH_PROFILE?.trim() || 'embedded';
  const profile: Profile = profileRaw === 'mesh' ? 'mesh' : 'embedded';
  const r = new Reader(env, profile);
  r.problems.push(...fileProblems);
  if (profileRaw !== 'embedded' && profileRaw !== 'mesh') {
    r.fail('RAGMESH_PROFILE', `must be embedded or mesh (got "${profileRaw}")`);
  }

  const services = parseServices(r);

  const transporterRaw = r.string('TRANSPORTER');
  const transporter =
    transporterRaw === null
      ? profile === 'mesh'
        ? r.fail('TRANSPORTER', 'is required in the mesh profile (amqp://user:pass@host:5672/vhost)')
        : null
      : r.url('TRANSPORTER', ['amqp:', 'amqps:'], transporterRaw)?.toString() ?? null;

  const dbDriver = r.oneOf('DB_DRIVER', ['pglite', 'pg'] as const);
  const dbUrl = dbDriver === 'pg' ? r.required('DATABASE_URL', 'when DB_DRIVER=pg') : r.string('DATABASE_URL');
  r.url('DATABASE_URL', ['postgres:', 'postgresql:'], dbUrl);

  const kvDriver = r.oneOf('KV_DRIVER', ['memory', 'redis'] as const);
  const redisUrl = kvDriver === 'redis' ? r.required('REDIS_URL', 'when KV_DRIVER=redis') : r.string('REDIS_URL');
  r.url('REDIS_URL', ['redis:', 'rediss:'], redisUrl);

  const objectsDriver = r.oneOf('OBJECTS_DRIVER', ['fs', 's3'] as const);
  let s3: S3Config | null = null;
  if (objectsDriver === 's3') {
    const endpoint = r.url('S3_ENDPOINT', ['http:', 'https:'], r.required('S3_ENDPOINT', 'when OBJECTS_DRIVER=s3'));
    const accessKey = r.required('S3_ACCESS_KEY', 'when OBJECTS_DRIVER=s3');
    const secretKey = r.required('S3_SECRET_KEY', 'when OBJECTS_DRIVER=s3');
    if (endpoint && accessKey && secretKey) {
      const useSSL = endpoint.protocol === 'https:';
      s3 = {
        endPoint: endpoint.hostname,
        port: endpoint.port ? Number(endpoint.port) : useSSL ? 443 : 80,
        useSSL,
        accessKey,
        secretKey,
        region: r.string('S3_REGION') ?? 'us-east-1',
      };
    }
  }
  const bucket = bucketName(r, 'S3_BUCKET');
  const modelsBucket = bucketName(r, 'S3_MODELS_BUCKET');

  const vectorsDriver = r.oneOf('VECTORS_DRIVER', ['usearch', 'pgvector', 'postgres', 'qdrant'] as const);
  const qdrantUrl =
    vectorsDriver === 'qdrant' ? r.required('QDRANT_URL', 'when VECTORS_DRIVER=qdrant') : r.string('QDRANT_URL');
  r.url('QDRANT_URL', ['http:', 'https:'], qdrantUrl);

  const queueDriver = r.oneOf('QUEUE_DRIVER', ['memory', 'amqp'] as const);
  const queueUrl = queueDriver === 'amqp' ? r.required('QUEUE_URL', 'when QUEUE_DRIVER=amqp') : r.string('QUEUE_URL');
  r.url('QUEUE_URL', ['amqp:', 'amqps:'], queueUrl);

  const llmBackend = r.oneOf('LLM_BACKEND', ['extractive', 'llama', 'openai'] as const);
  const llmUrl = llmBackend === 'openai' ? r.required('LLM_URL', 'when LLM_BACKEND=openai') : r.string('LLM_URL');
  r.url('LLM_URL', ['http:', 'https:'], llmUrl);

  const jwtSecret = r.string('JWT_SECRET');
  if (jwtSecret === null && profile === 'mesh' && r.string('JWT_KEYS_FILE') === null) {
    r.fail('JWT_SECRET', 'or JWT_KEYS_FILE is required in the mesh profile (a secret of at least 32 characters, or a signing keyset from `npm run keys`)');
  } else if (jwtSecret !== null && jwtSecret.length < 32) {
    r.fail('JWT_SECRET', `must be at least 32 characters (got ${jwtSecret.length})`);
  }

  const backupDriver = r.raw('BACKUP_DRIVER') === undefined ? objectsDriver : r.oneOf('BACKUP_DRIVER', ['fs', 's3'] as const);
  if (backupDriver === 's3' && objectsDriver !== 's3') r.fail('BACKUP_DRIVER', 's3 needs OBJECTS_DRIVER=s3 (the backup bucket lives on S3_ENDPOINT)');
  const backupSchedule = r.string('BACKUP_SCHEDULE');
  if (backupSchedule !== null) {
    try {
      parseCron(backupSchedule);
    } catch (err) {
      r.fail('BACKUP_SCHEDULE', (err as Error).message);
    }
  }
  const backup = {
    driver: backupDriver,
    dir: path.resolve(r.string('BACKUP_DIR') ?? path.join(r.string('DATA_DIR') ?? './data', 'backups')),
    bucket: bucketName(r, 'BACKUP_BUCKET'),
    schedule: backupSchedule,
    keepDaily: r.int('BACKUP_KEEP_DAILY', 0, 10_000),
    keepWeekly: r.int('BACKUP_KEEP_WEEKLY', 0, 10_000),
  };
  const rateLimitsOf = (name: string, defaults: RateLimitSettings['perUser']) => {
    const { limits, problems } = parseRateLimits(r.string(name) ?? '', defaults);
    for (const problem of problems) r.fail(name, problem);
    return limits;
  };
  const keysFileRaw = r.string('JWT_KEYS_FILE');

  const config = {
    profile,
    services,
    transporter,
    namespace: r.string('NAMESPACE') ?? 'ragmesh',
    nodeId: r.string('NODE_ID'),
    moleculerOverrides: Object.fromEntries(Object.entries(givenEnv).filter((e): e is [string, string] => e[0].startsWith('MOL_') && e[1] !== undefined)),
    http: { host: r.string('HOST') ?? '127.0.0.1', port: r.int('PORT', 0, 65535) },
    healthPort: r.int('HEALTH_PORT', 0, 65535),
    dataDir: path.resolve(r.string('DATA_DIR') ?? './data'),
    db: { driver: dbDriver, url: dbUrl, poolMax: r.int('DB_POOL_MAX', 1, 1000), migrateOnStart: r.bool('MIGRATE_ON_START'), pgliteThread: r.oneOf('PGLITE_THREAD', ['worker', 'main'] as const) },
    kv: { driver: kvDriver, url: redisUrl, prefix: r.string('KV_PREFIX') ?? 'ragmesh:' },
    objects: { driver: objectsDriver, s3, bucket, modelsBucket },
    vectors: { driver: vectorsDriver, qdrantUrl, qdrantApiKey: r.string('QDRANT_API_KEY') },
    queue: {
      driver: queueDriver,
      url: queueUrl,
      prefix: r.string('QUEUE_PREFIX') ?? 'ragmesh',
      heartbeatS: r.int('QUEUE_HEARTBEAT_S', 0, 3600),
      maxAttempts: r.int('JOB_MAX_ATTEMPTS', 1, 100),
      backoffMs: r.int('JOB_BACKOFF_MS', 10, 600_000),
      leaseMs: r.int('JOB_LEASE_MS', 1000, 3_600_000),
      outagePatienceMs: r.int('JOB_OUTAGE_PATIENCE_MS', 0, 86_400_000),
      sweepIntervalMs: r.int('JOB_SWEEP_INTERVAL_MS', 100, 86_400_000),
      staleAfterMs: r.int('JOB_STALE_AFTER_MS', 1000, 86_400_000),
    },
    ingest: {
      concurrency: r.int('INGEST_CONCURRENCY', 1, 64),
      uploadMaxBytes: r.int('UPLOAD_MAX_BYTES', 1, 1024 ** 4),
      uploadMaxFiles: r.int('UPLOAD_MAX_FILES', 1, 1000),
      chunkTargetTokens: r.int('CHUNK_TARGET_TOKENS', 16, 8192),
      chunkOverlapTokens: r.int('CHUNK_OVERLAP_TOKENS', 0, 4096),
    },
    search: {
      legTimeoutMs: r.int('SEARCH_LEG_TIMEOUT_MS', 10, 600_000),
      embedFloorMs: r.int('SEARCH_EMBED_FLOOR_MS', 10, 600_000),
      embedTimeoutMs: r.int('SEARCH_EMBED_TIMEOUT_MS', 10, 600_000),
      candidates: r.int('SEARCH_CANDIDATES', 10, 1000),
      lexicalPostings: r.int('SEARCH_LEXICAL_POSTINGS', 100, 100_000_000),
      lexicalMemoryBytes: (r.int('SEARCH_LEXICAL_MEMORY_MB', 0, 1_000_000) ?? 0) * 2 ** 20,
      concurrency: r.raw('SEARCH_CONCURRENCY') === undefined ? (dbDriver === 'pg' ? 4 : 1) : r.int('SEARCH_CONCURRENCY', 1, 10_000),
      queueLimit: r.int('SEARCH_QUEUE_LIMIT', 0, 100_000),
      queueWaitMs: r.int('SEARCH_QUEUE_WAIT_MS', 0, 600_000),
    },
    llm: {
      backend: llmBackend,
      url: llmUrl,
      model: r.string('LLM_MODEL') ?? 'default',
      apiKey: r.string('LLM_API_KEY'),
      concurrency: r.int('LLM_CONCURRENCY', 1, 256),
      queueLimit: r.int('LLM_QUEUE_LIMIT', 0, 100_000),
      maxTokens: r.int('LLM_MAX_TOKENS', 1, 131_072),
      contextSize: r.int('LLM_CONTEXT_SIZE', 256, 1_048_576),
      threads: r.int('LLM_THREADS', 0, 1024),
    },
    chat: { streamsPerUser: r.int('CHAT_STREAMS_PER_USER', 1, 1000), streamsPerTenant: r.int('CHAT_STREAMS_PER_TENANT', 0, 1_000_000) },
    auth: {
      jwtSecret,
      keysFile: path.resolve(keysFileRaw ?? path.join(r.string('DATA_DIR') ?? './data', 'secrets', 'signing-keys.json')),
      audience: r.string('JWT_AUDIENCE') ?? 'ragmesh',
      issuer: r.string('JWT_ISSUER') ?? 'ragmesh',
      ttlSeconds: r.int('JWT_TTL_SECONDS', 60, 31_536_000),
      cacheEntries: r.int('AUTH_CACHE_ENTRIES', 1, 10_000_000),
      apiKeyCacheMs: r.int('API_KEY_CACHE_MS', 0, 600_000),
    },
    rateLimits: {
      windowMs: r.int('RATE_LIMIT_WINDOW_MS', 100, 86_400_000),
      perUser: rateLimitsOf('RATE_LIMIT_PER_USER', DEFAULT_RATE_LIMITS.perUser),
      perTenant: rateLimitsOf('RATE_LIMIT_PER_TENANT', DEFAULT_RATE_LIMITS.perTenant),
    },
    streams: { eventsPerUser: r.int('EVENT_STREAMS_PER_USER', 1, 1000), eventsPerTenant: r.int('EVENT_STREAMS_PER_TENANT', 0, 1_000_000) },
    requestTimeoutMs: r.int('REQUEST_TIMEOUT_MS', 100, 3_600_000),
    metrics: r.bool('METRICS'),
    logLevel: r.oneOf('LOG_LEVEL', ['fatal', 'error', 'warn', 'info', 'debug', 'trace'] as const),
    buildCommit: r.string('BUILD_COMMIT'),
    models: {
      cacheDir: path.resolve(r.string('MODELS_CACHE_DIR') ?? path.join(r.string('DATA_DIR') ?? './data', 'models-cache')),
      embAliases: (r.string('EMB_MODELS') ?? '').split(',').map((a) => a.trim()).filter(Boolean),
      embThreads: r.int('EMB_THREADS', 1, 256),
      embMaxBatch: r.int('EMB_MAX_BATCH', 1, 4096),
      embQueueLimit: r.int('EMB_QUEUE_LIMIT', 1, 1_000_000),
      embBackgroundBatch: r.int('EMB_BACKGROUND_BATCH', 1, 4096),
      embBackgroundThreads: r.int('EMB_BACKGROUND_THREADS', 1, 256),
      embBackgroundNice: r.int('EMB_BACKGROUND_NICE', 0, 19),
      reindexBatch: r.int('REINDEX_BATCH', 1, 4096),
      ocrEnabled: r.bool('OCR_ENABLED') ?? true,
      ocrWorkers: r.int('OCR_WORKERS', 1, 64),
      ocrQueueLimit: r.int('OCR_QUEUE_LIMIT', 1, 100_000),
      ocrLanguages: (r.string('OCR_LANGUAGES') ?? 'eng+rus').split('+').map((l) => l.trim()).filter(Boolean),
      tessdataDir: path.resolve(r.string('TESSDATA_DIR') ?? '/usr/share/tesseract-ocr/5/tessdata'),
    },
    backup,
    sweep: {
      intervalMs: (r.int('ORPHAN_SWEEP_INTERVAL_MINUTES', 0, 525_600) ?? 0) * 60_000,
      orphanMinAgeMs: (r.int('ORPHAN_MIN_AGE_HOURS', 0, 87_600) ?? 0) * 3600_000,
      chatRetentionDays: r.int('CHAT_RETENTION_DAYS', 0, 36_500),
    },
  };

  if (r.problems.length > 0) throw new ConfigError(r.problems);
  // Every null above that mattered was recorded as a problem, so the shape is complete here.
  return config as Config;
}

function parseServices(r: Reader): ServiceName[] {
  const raw = r.raw('SERVICES') ?? SERVICE_NAMES.join(',');
  const names = raw.split(',').map((s) => s.trim()).filter(Boolean);
  const unknown = names.filter((n) => !(SERVICE_NAMES as readonly string[]).includes(n));
  if (unknown.length > 0 || names.length === 0) {
    r.fail('SERVICES', `unknown service(s) ${unknown.join(', ') || '(none given)'}; choose from ${SERVICE_NAMES.join(', ')}`);
    return [];
  }
  return [...new Set(names)] as ServiceName[];
}

function bucketName(r: Reader, name: string): string {
  const value = r.string(name) ?? '';
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(value)) {
    r.fail(name, `must be a valid S3 bucket name: 3-63 of [a-z0-9.-] (got "${value}")`);
  }
  return value;
}

/** The docs table; kept here so the docs cannot drift from the code (a test checks it). */
export function renderConfigTable(): string {
  const rows = VARIABLES.map((v) => {
    const def = v.defaultDoc ?? (typeof v.default === 'string' ? v.default : '');
    return `| \`${v.name}\` | ${def ? `\`${def}\`` : '—'} | ${v.doc}${v.secret ? ` Secret: may be given as \`${v.name}_FILE\` (a file holding the value, e.g. a Swarm secret).` : ''} |`;
  });
  return ['| variable | default | meaning |', '| --- | --- | --- |', ...rows].join('\n');
}

/**
 * Sets a variable that a native library reads from the process environment, unless
 * the operator set it: the one write to process.env, here beside its one reader.
 */
export function defaultProcessEnv(name: string, value: string): void {
  process.env[name] ??= value;
}
