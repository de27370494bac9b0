import { Errors } from 'moleculer';

/**
 * One entry of the catalogue: the HTTP status the api answers with, whether a retry of
 * the same request may succeed, and what the code means (rendered into docs/api.md).
 */
export interface ErrorSpec {
  readonly status: number;
  readonly retryable: boolean;
  readonly summary: string;
  /**
   * A dependency is out of reach (a store, the service bus, a service restarting), not
   * the work itself at fault: a job failing with it waits the outage out without
   * spending an attempt (lib/jobs/worker.ts, JOB_OUTAGE_PATIENCE_MS).
   */
  readonly outage?: boolean;
}

/**
 * Every error code ragmesh sends, once. Where an error arises it is created from this
 * table (`appError(code, …)`), so its status and whether it may be retried are decided
 * there and nowhere downstream: the ingest pipeline retries what says `retryable`, the
 * api answers `status`. docs/api.md holds this table rendered (`npm run docs:api`),
 * and a test keeps the two in step.
 */
export const ERROR_CATALOGUE = {
  // Requests the api cannot parse or route
  BAD_REQUEST: { status: 400, retryable: false, summary: 'The request is malformed (e.g. a JSON body that does not parse).' },
  VALIDATION_FAILED: { status: 422, retryable: false, summary: 'Parameters do not match the route\'s schema; `details` lists each problem.' },
  ROUTE_NOT_FOUND: { status: 404, retryable: false, summary: 'No route has this method and path.' },
  METHOD_NOT_ALLOWED: { status: 405, retryable: false, summary: 'The health port answers GET only.' },
  PAYLOAD_TOO_LARGE: { status: 413, retryable: false, summary: 'The request body is larger than the route accepts (JSON: 1 MB under /api/v1, 2 MB under /v1).' },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, retryable: false, summary: 'The request body has a content type the route does not read.' },

  // Who is calling
  MISSING_TOKEN: { status: 401, retryable: false, summary: 'No access token was sent.' },
  INVALID_TOKEN: { status: 401, retryable: false, summary: 'The access token is malformed, forged, or names no valid tenant, user or roles.' },
  TOKEN_EXPIRED: { status: 401, retryable: false, summary: 'The access token has expired; get a new one.' },
  TOKEN_NOT_YET_VALID: { status: 401, retryable: false, summary: 'The access token\'s `nbf` lies in the future.' },
  UNKNOWN_SIGNING_KEY: { status: 401, retryable: false, summary: 'The token names a `kid` that is not (or no longer) in the signing keyset.' },
  INVALID_API_KEY: { status: 401, retryable: false, summary: 'The API key is malformed or unknown.' },
  API_KEY_REVOKED: { status: 401, retryable: false, summary: 'The API key was revoked.' },
  FORBIDDEN: { status: 403, retryable: false, summary: 'The caller\'s roles do not allow this route (the permission table, lib/auth/permissions.ts).' },
  ROLE_NOT_GRANTABLE: { status: 403, retryable: false, summary: 'A role the caller may not hand out (only an admin grants admin; a key never holds more than its user).' },
  RATE_LIMITED: { status: 429, retryable: true, summary: 'Too many requests: from the caller or their tenant for this class of route (RATE_LIMIT_PER_USER / _PER_TENANT), or, from nginx at the edge, from one client address (20/s, bursts of 40; 10 open event streams); retry after `Retry-After` seconds.' },
  API_KEY_NOT_FOUND: { status: 404, retryable: false, summary: 'No such API key in the caller\'s tenant.' },
  USER_NOT_FOUND: { status: 404, retryable: false, summary: 'No such user in the caller\'s tenant.' },
  INVALID_RANGE: { status: 400, retryable: false, summary: 'A time range whose `since` is not before its `until`.' },
  INVALID_ENCODING: { status: 400, retryable: false, summary: 'The request body or query is not valid UTF-8, or holds NUL characters.' },
  JSON_TOO_DEEP: { status: 400, retryable: false, summary: 'The JSON body nests deeper than 64 levels.' },
  HEADERS_TOO_LARGE: { status: 431, retryable: false, summary: 'The request headers are too many or too large.' },
  ADMIN_ONLY: { status: 403, retryable: false, summary: 'Only an admin may do this.' },
  INVALID_ROLE: { status: 400, retryable: false, summary: 'An unknown role was named.' },
  INVALID_TENANT: { status: 400, retryable: false, summary: 'A tenant id is not 1-64 letters, digits, ".", "_" or "-".' },
  INVALID_USER: { status: 400, retryable: false, summary: 'A user id is not valid.' },

  // Uploads and documents
  EXPECTED_MULTIPART: { status: 415, retryable: false, summary: 'The upload is not multipart/form-data.' },
  MALFORMED_MULTIPART: { status: 400, retryable: false, summary: 'The multipart body cannot be parsed.' },
  NO_FILE: { status: 400, retryable: false, summary: 'The request has no `file` part.' },
  TOO_MANY_FILES: { status: 400, retryable: false, summary: 'More files than UPLOAD_MAX_FILES in one request.' },
  FILE_TOO_LARGE: { status: 413, retryable: false, summary: 'A file is larger than UPLOAD_MAX_BYTES.' },
  EMPTY_FILE: { status: 400, retryable: false, summary: 'A file has no bytes.' },
  UPLOAD_ABORTED: { status: 400, retryable: false, summary: 'The client closed the connection during the upload.' },
  UNSUPPORTED_TYPE: { status: 415, retryable: false, summary: 'The file\'s bytes are not PDF, DOCX, HTML, Markdown, text, PNG, JPEG or TIFF (executables, other archives and formats included).' },
  TYPE_MISMATCH: { status: 415, retryable: false, summary: 'The file\'s name or content type declares another type than its bytes are (a PDF named .docx, text sent as image/png), or declares an executable (.exe, application/x-msdownload): refused at upload.' },
  INVALID_SOURCE_ID: { status: 400, retryable: false, summary: '`source_id` is not 1-256 letters, digits and ._:@/-.' },
  INVALID_TAGS: { status: 400, retryable: false, summary: '`tags`: more than 32, or one is not 1-64 letters, digits and ._:-.' },
  INVALID_UPLOAD_URL: { status: 403, retryable: false, summary: 'A presigned upload URL was tampered with.' },
  UPLOAD_URL_EXPIRED: { status: 403, retryable: false, summary: 'A presigned upload URL has expired.' },
  UPLOAD_NOT_FOUND: { status: 404, retryable: false, summary: 'No such upload for this caller.' },
  UPLOAD_MISSING: { status: 409, retryable: false, summary: 'Nothing was PUT to the upload URL yet.' },
  DOCUMENT_NOT_FOUND: { status: 404, retryable: false, summary: 'No such document in the caller\'s tenant.' },
  DOCUMENT_DELETED: { status: 409, retryable: false, summary: 'The document of this job was deleted (a job\'s `errorCode` when deleted while it ran).' },
  INVALID_OBJECT_KEY: { status: 400, retryable: false, summary: 'An object key is malformed (internal callers only).' },
  OBJECT_NOT_FOUND: { status: 404, retryable: false, summary: 'A stored object is missing.' },

  // What a file holds (a job's `errorCode`; never retried: the file will not change)
  UNREADABLE_FILE: { status: 422, retryable: false, summary: 'The file is of a supported type but its content cannot be read.' },
  NO_TEXT: { status: 422, retryable: false, summary: 'No text could be extracted from the file (with OCR off, OCR_ENABLED=false, a file that is only scans or images).' },
  TOO_MANY_PAGES: { status: 413, retryable: false, summary: 'The document has more pages than EXTRACT_MAX_PAGES.' },
  IMAGE_TOO_LARGE: { status: 413, retryable: false, summary: 'An image has more pixels or bytes than OCR accepts.' },
  ARCHIVE_BOMB: { status: 413, retryable: false, summary: 'A DOCX (zip) expands far beyond its size, declares fewer unpacked bytes than it holds compressed, or holds over 10,000 entries: refused at upload (and by the extractor, for what the screen cannot see).' },
  UNSAFE_ARCHIVE: { status: 422, retryable: false, summary: 'A DOCX (zip) holds entries named outside the archive (`../`, absolute paths) or encrypted entries: refused at upload.' },
  INVALID_IMAGE: { status: 400, retryable: false, summary: 'The OCR input is not an image.' },
  ENCRYPTED_PDF: { status: 422, retryable: false, summary: 'The PDF is encrypted: refused at upload (upload it without a password).' },
  ACTIVE_CONTENT: { status: 422, retryable: false, summary: 'The PDF holds JavaScript, launch actions, embedded files or rich media, or the DOCX macros or ActiveX controls: refused at upload.' },
  POLYGLOT: { status: 422, retryable: false, summary: 'The file is two formats at once (a PDF or an image with a zip inside or appended, a DOCX with a PDF header, HTML before a PDF header): refused at upload.' },
  OCR_FAILED: { status: 400, retryable: false, summary: 'The image could not be recognised.' },

  // Jobs
  JOB_NOT_FOUND: { status: 404, retryable: false, summary: 'No such job in the caller\'s tenant.' },
  JOB_FINISHED: { status: 409, retryable: false, summary: 'The job has already finished; it cannot be canceled.' },
  JOB_NOT_RETRYABLE: { status: 409, retryable: false, summary: 'Only a failed or canceled job can be retried or replayed.' },
  DEAD_LETTER_NOT_FOUND: { status: 404, retryable: false, summary: 'The job has no dead letter to replay.' },

  // Analyses
  ANALYSIS_NOT_FOUND: { status: 404, retryable: false, summary: 'The document has not been analyzed yet.' },
  DOCUMENT_NOT_READY: { status: 409, retryable: false, summary: 'The document\'s text failed to index or was canceled: there is nothing to analyze (an analyze job\'s `errorCode`).' },
  NO_EXTRACTED_TEXT: { status: 409, retryable: false, summary: 'The extracted text of the document\'s version is gone; upload it again (an analyze job\'s `errorCode`).' },
  INVALID_JOB_PAYLOAD: { status: 500, retryable: false, summary: 'A job\'s payload does not match its type (a job\'s `errorCode`; a bug, never the caller\'s input).' },
  UNKNOWN_JOB_TYPE: { status: 500, retryable: false, summary: 'A job names a type this deployment does not define (a job\'s `errorCode`).' },
  ATTEMPTS_EXHAUSTED: { status: 500, retryable: false, summary: 'Every attempt of the job ended without an outcome (its workers died); a job\'s `errorCode`.' },
  LEASE_EXPIRED: { status: 500, retryable: true, summary: 'The worker running the job stopped heart-beating; the sweeper queued it again or, with no attempts left, failed it (a job\'s `errorCode`).' },
  DEAD_LETTERED: { status: 500, retryable: false, summary: 'RabbitMQ dead-lettered the job\'s message by itself (its delivery limit: workers died holding it); a job\'s `errorCode`, replayable by an admin.' },
  QUEUE_CLOSED: { status: 503, retryable: true, outage: true, summary: 'The job queue of this process is closing.' },
  QUEUE_UNAVAILABLE: { status: 503, retryable: true, outage: true, summary: 'The job queue (RabbitMQ) cannot be reached.' },

  // Stores out of reach (docs/architecture.md, "Outages by dependency")
  DATABASE_UNAVAILABLE: { status: 503, retryable: true, outage: true, summary: 'PostgreSQL cannot be reached right now (refused, restarting, or no connection within the pool\'s bound); the message names the cause\'s code.' },
  DATABASE_TIMEOUT: { status: 503, retryable: true, summary: 'A database statement ran past its statement timeout.' },
  KV_UNAVAILABLE: { status: 503, retryable: true, outage: true, summary: 'Redis cannot be reached or did not answer in time; caches, caps and rate limits degrade instead where they can.' },
  OBJECTS_UNAVAILABLE: { status: 503, retryable: true, outage: true, summary: 'Object storage (S3/MinIO) cannot be reached or asked to retry later.' },

  // Search
  EMPTY_QUERY: { status: 400, retryable: false, summary: 'The query has no searchable words.' },
  QUERY_TOO_LONG: { status: 400, retryable: false, summary: 'The query is longer than the search accepts.' },
  UNKNOWN_EMBEDDING_ALIAS: { status: 400, retryable: false, summary: 'No active embedding model under that alias.' },
  SEARCH_UNAVAILABLE: { status: 503, retryable: true, summary: 'No search leg answered in time.' },

  // Chats and answers
  CHAT_NOT_FOUND: { status: 404, retryable: false, summary: 'No such chat of the caller.' },
  EMPTY_MESSAGE: { status: 400, retryable: false, summary: 'The message is empty.' },
  MESSAGE_TOO_LONG: { status: 400, retryable: false, summary: 'The message is longer than 8000 characters.' },
  TOO_MANY_STREAMS: { status: 429, retryable: true, summary: 'The user already holds CHAT_STREAMS_PER_USER answers (chat and /v1/chat/completions together) or EVENT_STREAMS_PER_USER event streams (job, document and model events), or their tenant CHAT_STREAMS_PER_TENANT / EVENT_STREAMS_PER_TENANT; retry after `Retry-After` seconds.' },
  LLM_PROMPT_TOO_LONG: { status: 400, retryable: false, summary: 'The conversation and the answer budget exceed the model\'s context.' },
  LLM_BUSY: { status: 503, retryable: true, summary: 'Every generation slot of the model is taken.' },
  LLM_MODEL_NOT_READY: { status: 503, retryable: true, summary: 'The llm model is still loading, or failed to load.' },
  LLM_UNREACHABLE: { status: 503, retryable: true, summary: 'The OpenAI-compatible LLM server cannot be reached.' },
  LLM_ERROR: { status: 503, retryable: true, summary: 'The LLM server failed or answered an error.' },
  LLM_STREAM_ENDED: { status: 503, retryable: true, summary: 'The answer stream stopped before it was complete.' },

  // Models
  MODEL_NOT_FOUND: { status: 404, retryable: false, summary: 'No such model (OpenAI API), or no usable active llm model version.' },
  MODEL_VERSION_NOT_FOUND: { status: 404, retryable: false, summary: 'That alias@version is not registered.' },
  MODEL_ALIAS_NOT_FOUND: { status: 404, retryable: false, summary: 'No active version for that alias.' },
  MODEL_VERSION_EXISTS: { status: 409, retryable: false, summary: 'alias@version is registered with different files; publish a new version.' },
  NOTHING_TO_ROLL_BACK: { status: 409, retryable: false, summary: 'The alias has no previous version.' },
  INVALID_MANIFEST: { status: 400, retryable: false, summary: 'A model manifest is not valid.' },
  MODEL_FOLDER_MISMATCH: { status: 400, retryable: false, summary: 'A model folder\'s files do not match their manifest\'s SHA-256.' },
  NOT_AN_EMBEDDING_MODEL: { status: 400, retryable: false, summary: 'The model is not an embedding model.' },
  OCR_LANGUAGE_MISSING: { status: 400, retryable: false, summary: 'An OCR model lacks a traineddata it declares.' },
  BATCH_TOO_LARGE: { status: 400, retryable: false, summary: 'More inputs in one call than the model\'s queue holds.' },
  EMB_STARTING: { status: 503, retryable: true, outage: true, summary: 'The emb service is still starting.' },
  MODEL_NOT_LOADED: { status: 404, retryable: true, summary: 'emb has no model loaded under that alias; one being switched to may load shortly.' },
  MODEL_VERSION_MISMATCH: { status: 409, retryable: true, summary: 'emb serves another version of the alias than asked for (a switch happened); retry with the new one.' },
  NO_EMBEDDING_MODEL: { status: 503, retryable: true, summary: 'No embedding model is active.' },
  MODEL_INTEGRITY: { status: 500, retryable: false, summary: 'A model file does not match the SHA-256 of its manifest: it is not loaded.' },
  OCR_MODEL_MISSING: { status: 503, retryable: true, summary: 'No OCR model version is active.' },
  MODEL_COVERAGE_INCOMPLETE: { status: 409, retryable: false, summary: 'A switch to an embedding version whose collection lacks vectors for some chunks; re-index it first, or force the switch.' },
  MODEL_VERSION_ACTIVE: { status: 409, retryable: false, summary: 'The active version of an alias cannot be deleted; switch to another version first.' },
  MODEL_SWITCH_VETOED: { status: 409, retryable: false, summary: 'A node that would serve the version could not load it; the flag did not move. The message names the node.' },
  MODEL_NO_NODE: { status: 503, retryable: true, summary: 'No node of the service that serves this kind of model is running.' },
  RERANK_NOT_SUPPORTED: { status: 400, retryable: false, summary: 'rerank models are refused: ragmesh has no cross-encoder stage to use them.' },
  NO_SAMPLE_QUERIES: { status: 400, retryable: false, summary: 'compare found no recent questions of the tenant; pass queries.' },
  IMPORT_INCOMPLETE: { status: 400, retryable: false, summary: 'A model import lacks values its files do not give.' },

  // Capacity and the mesh
  OVERLOADED: { status: 503, retryable: true, outage: true, summary: 'Capacity is exhausted right now; retry after `Retry-After` seconds.' },
  MAINTENANCE: { status: 503, retryable: true, summary: 'ragmesh is in maintenance mode: reads and search work, changes are refused until it ends.' },
  SERVICE_UNAVAILABLE: { status: 503, retryable: true, outage: true, summary: 'The service behind the route is not running right now.' },
  BROKER_UNAVAILABLE: { status: 503, retryable: true, outage: true, summary: 'This process has lost the service bus (RabbitMQ transporter): calls to other services fail until it reconnects, within seconds.' },
  UPSTREAM_TIMEOUT: { status: 504, retryable: true, outage: true, summary: 'A service did not answer in time (from nginx: no api replica answered within its read timeout).' },
  // Sent by nginx at the edge (nginx/nginx.conf), in the same shape
  UPSTREAM_UNAVAILABLE: { status: 502, retryable: true, summary: 'nginx: no api replica could be reached (all down or restarting).' },
  INTERNAL: { status: 500, retryable: true, summary: 'An unexpected failure; `request_id` finds it in the logs. The message is never echoed.' },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERROR_CATALOGUE;

export const isErrorCode = (value: unknown): value is ErrorCode => typeof value === 'string' && Object.hasOwn(ERROR_CATALOGUE, value);

/**
 * Every error that crosses a service boundary is a RagmeshError: a catalogued `type`
 * (the stable code clients switch on), the HTTP status as `code`, optional `data`, and
 * `retryable` from the catalogue. Moleculer serialises `code`, `type`, `data` and
 * `retryable` over the transporter, so a caller in another process sees the same error
 * the callee threw.
 */
export class RagmeshError extends Errors.MoleculerError {
  declare type: ErrorCode;
  constructor(code: ErrorCode, message: string, data?: unknown) {
    const spec: ErrorSpec = ERROR_CATALOGUE[code];
    super(message, spec.status, code, data);
    this.name = 'RagmeshError';
    this.retryable = spec.retryable;
  }
}

/** The one way to make an error: its code decides its status and whether a retry may help. */
export const appError = (code: ErrorCode, message: string, data?: unknown): RagmeshError => new RagmeshError(code, message, data);

/** Capacity is exhausted right now; the api answers 503 with Retry-After. */
export const overloaded = (message: string, retryAfterSeconds = 1): RagmeshError => appError('OVERLOADED', message, { retryAfterSeconds });

/** Moleculer's own failures, by error name: what they mean in the catalogue. */
const MOLECULER_CODES: Record<string, ErrorCode> = {
  ValidationError: 'VALIDATION_FAILED',
  ServiceNotFoundError: 'SERVICE_UNAVAILABLE',
  ServiceNotAvailableError: 'SERVICE_UNAVAILABLE',
  RequestTimeoutError: 'UPSTREAM_TIMEOUT',
  BrokerDisconnectedError: 'BROKER_UNAVAILABLE',
  QueueIsFullError: 'OVERLOADED',
  NotFoundError: 'ROUTE_NOT_FOUND',
  PayloadTooLarge: 'PAYLOAD_TOO_LARGE',
  UnAuthorizedError: 'INVALID_TOKEN',
  ForbiddenError: 'FORBIDDEN',
  BadRequestError: 'BAD_REQUEST',
};

/** Errors of no catalogued origin (body parsers, Node), by the HTTP status they carry. */
const STATUS_CODES: Record<number, ErrorCode> = {
  400: 'BAD_REQUEST',
  404: 'ROUTE_NOT_FOUND',
  413: 'PAYLOAD_TOO_LARGE',
  415: 'UNSUPPORTED_MEDIA_TYPE',
  422: 'VALIDATION_FAILED',
  503: 'SERVICE_UNAVAILABLE',
  504: 'UPSTREAM_TIMEOUT',
};

export interface Classified {
  code: ErrorCode;
  status: number;
  retryable: boolean;
  /** False when the error is not one of ours: its message may hold hostnames or SQL. */
  known: boolean;
  /** A dependency out of reach rather than the work at fault (ErrorSpec.outage). */
  outage: boolean;
}

/**
 * What any thrown value means, in catalogue terms. A RagmeshError (or one rebuilt
 * from the transporter, which keeps its name and type but not its class) says so
 * itself; Moleculer's own errors map by name; anything else is INTERNAL. This reads
 * what the origin decided; it never re-decides it.
 */
export function classify(err: unknown): Classified {
  const e = err as { name?: string; type?: unknown; code?: unknown; status?: unknown; statusCode?: unknown } | null | undefined;
  // Moleculer rebuilds a remote RagmeshError as a MoleculerError: the class is lost, the code survives.
  if (e && isErrorCode(e.type)) {
    const spec: ErrorSpec = ERROR_CATALOGUE[e.type];
    return { code: e.type, status: spec.status, retryable: spec.retryable, known: true, outage: spec.outage === true };
  }
  const byName = e?.name ? MOLECULER_CODES[e.name] : undefined;
  if (byName) return { code: byName, ...statusOf(byName), known: true };
  const status = [e?.code, e?.status, e?.statusCode].find((s): s is number => typeof s === 'number' && s >= 400 && s < 600);
  if (status !== undefined && status < 500) {
    const code = STATUS_CODES[status] ?? 'BAD_REQUEST';
    return { code, status, retryable: false, known: true, outage: false };
  }
  const byStatus = status !== undefined ? STATUS_CODES[status] : undefined;
  if (byStatus) return { code: byStatus, ...statusOf(byStatus), known: false };
  return { code: 'INTERNAL', ...statusOf('INTERNAL'), known: false };
}

const statusOf = (code: ErrorCode) => {
  const spec: ErrorSpec = ERROR_CATALOGUE[code];
  return { status: spec.status, retryable: spec.retryable, outage: spec.outage === true };
};

/** Whether trying the same work again may succeed, as the error's origin decided. */
export const isRetryable = (err: unknown): boolean => classify(err).retryable;

/** Whether the error says a dependency is out of reach (the work itself may be fine). */
export const isOutage = (err: unknown): boolean => classify(err).outage;

/** The catalogue as the Markdown table in docs/api.md. */
export function renderErrorCatalogue(): string {
  const rows = Object.entries(ERROR_CATALOGUE).map(
    ([code, spec]: [string, ErrorSpec]) => `| \`${code}\` | ${spec.status} | ${spec.retryable ? 'yes' : 'no'} | ${spec.summary.replace(/\|/g, '\\|')} |`,
  );
  return ['| code | status | retryable | meaning |', '| --- | --- | --- | --- |', ...rows].join('\n');
}

/** Raised at boot when the environment is invalid; lists every problem at once. */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}
