import { buffer } from 'node:stream/consumers';
import type { Logger } from 'pino';
import type { Database } from '../../lib/adapters/db/database.ts';
import { analysisMarkdown, buildAnalysis, detectLanguage, fullText, type Analysis } from '../../lib/analyze/analysis.ts';
import { appError, classify, isRetryable } from '../../lib/errors.ts';
import type { ExtractedDocument } from '../../lib/extract/types.ts';
import { retryDelayMs, type JobDelivery, type JobMessage, type JobQueue } from '../../lib/ports/job-queue.ts';
import type { KeyValueStore } from '../../lib/ports/key-value.ts';
import type { ObjectStore } from '../../lib/ports/object-store.ts';
import { tenantScope, type TenantScope } from '../../lib/ports/tenant-scope.ts';
import { DocumentsRepository } from '../../lib/repositories/documents.ts';
import { JobsRepository, type JobRow } from '../../lib/repositories/jobs.ts';
import { SearchRepository } from '../../lib/repositories/search.ts';
import { artifactKeys } from '../ingest/job-model.ts';

export const ANALYZE_QUEUE = 'analyze';
/** Largest text whose lexemes are counted for key terms (the rest of a huge document adds little). */
const TERMS_TEXT_LIMIT = 400_000;

/** Where a document's analysis lives: beside its versions, so deleting the document removes it. */
export function analysisKeys(tenantId: string, documentId: string) {
  const base = `tenants/${tenantId}/documents/${documentId}`;
  return { json: `${base}/analysis.json`, markdown: `${base}/analysis.md` };
}

export function analyzeMessage(job: JobRow, attempt = job.attempts + 1): JobMessage {
  return { jobId: job.id, tenantId: job.tenantId, type: 'analyze', attempt, enqueuedAt: new Date().toISOString() };
}

export interface AnalyzeDeps {
  db: Database;
  objects: ObjectStore;
  queue: JobQueue;
  kv: KeyValueStore;
  logger: Logger;
  workerId: string;
  maxAttempts: number;
  backoffMs: number;
  lockTtlMs: number;
  publishJob: (job: JobRow) => void;
  running: Map<string, AbortController>;
  /** A summary from the configured LLM backend, or null to keep the extractive one. */
  llmSummary?: (job: JobRow, text: string, language: string, signal: AbortSignal) => Promise<string | null>;
}

/** The worker is stopping: the job is neither failed nor canceled; its message goes back unacknowledged. */
export class AnalyzeWorkerStopping extends Error {
  constructor() {
    super('analyze worker stopping');
    this.name = 'AnalyzeWorkerStopping';
  }
}

export class AnalyzeCanceled extends Error {
  constructor() {
    super('canceled');
    this.name = 'AnalyzeCanceled';
  }
}

/**
 * Runs one analyze message: wait for the document's text (its ingest), read the
 * extracted pages, compute the analysis, store it as JSON and Markdown, mark the job
 * ready. Failures retry with backoff like ingest; a permanent one goes to the dead letters.
 */
export async function runAnalyzeJob(deps: AnalyzeDeps, delivery: JobDelivery): Promise<void> {
  const { message } = delivery;
  const scope = tenantScope(message.tenantId);
  const jobs = new JobsRepository(deps.db.knex);
  const job = await jobs.get(scope, message.jobId);
  if (!job || (job.status !== 'queued' && job.status !== 'running')) return;

  const lockKey = `job-lock:${job.id}`;
  if (!(await deps.kv.setIfAbsent(lockKey, deps.workerId, deps.lockTtlMs))) {
    await deps.queue.publish(ANALYZE_QUEUE, message, { delayMs: Math.max(1000, deps.lockTtlMs / 3) });
    return;
  }
  const abort = new AbortController();
  deps.running.set(job.id, abort);
  try {
    await runClaimed(deps, scope, job, abort.signal);
  } finally {
    deps.running.delete(job.id);
    await deps.kv.deleteIfEquals(lockKey, deps.workerId).catch(() => undefined);
  }
}

async function runClaimed(deps: AnalyzeDeps, scope: TenantScope, claimed: JobRow, signal: AbortSignal): Promise<void> {
  const jobs = new JobsRepository(deps.db.knex);
  const documents = new DocumentsRepository(deps.db.knex);
  if (claimed.cancelRequested) return finishCanceled(deps, scope, claimed);
  const document = claimed.documentId ? await documents.get(scope, claimed.documentId) : null;
  if (!document) return finishCanceled(deps, scope, claimed);

  // The text comes from ingest: until the document's current version is indexed, wait.
  if (document.status === 'queued' || document.status === 'running') {
    await deps.queue.publish(ANALYZE_QUEUE, analyzeMessage(claimed, claimed.attempts + 1), { delayMs: 500 });
    return;
  }

  const running = await jobs.transition(scope, claimed.id, 'running', { attempts: claimed.attempts + 1, step: 'read', progress: 0.1, error: null, errorCode: null });
  if (!running) return;
  deps.publishJob(running);
  const step = async (name: string, progress: number) => {
    if (signal.aborted) throw signal.reason;
    const fresh = await jobs.get(scope, running.id);
    if (fresh?.cancelRequested) throw new AnalyzeCanceled();
    const updated = await jobs.reportProgress(scope, running.id, name, progress);
    if (updated) deps.publishJob(updated);
  };

  try {
    if (document.status !== 'ready') throw appError('DOCUMENT_NOT_READY', `The document is ${document.status}: it has no text to analyze`);
    const extractedKey = artifactKeys(scope.tenantId, document.id, document.version).extracted;
    if (!(await deps.objects.stat(extractedKey))) throw appError('NO_EXTRACTED_TEXT', 'The extracted text of this version is gone; upload the document again');
    const extracted = JSON.parse((await buffer(await deps.objects.get(extractedKey))).toString('utf8')) as ExtractedDocument;
    const text = fullText(extracted);

    await step('terms', 0.4);
    const search = new SearchRepository(deps.db.knex);
    const language = detectLanguage(text);
    const config = language === 'ru' ? 'russian' : language === 'en' ? 'english' : 'simple';
    const lexemes = ((await search.analyze(scope, text.slice(0, TERMS_TEXT_LIMIT), [config])).get(config) ?? []).map((l) => ({ term: l.term, tf: l.qtf }));
    const [df, stats] = await Promise.all([search.documentFrequencies(scope, config, lexemes.map((l) => l.term)), search.stats(scope)]);

    await step('summary', 0.7);
    const llmText = deps.llmSummary ? await deps.llmSummary(running, text, language, signal).catch((err: unknown) => {
      deps.logger.warn({ err, jobId: running.id }, 'llm summary failed; keeping the extractive one');
      return null;
    }) : null;
    const analysis: Analysis = buildAnalysis({
      documentId: document.id,
      version: document.version,
      extracted: { ...extracted, title: document.title ?? extracted.title ?? document.filename },
      terms: { lexemes, df, corpusSize: stats.chunksPerConfig[config] ?? stats.chunkCount },
      summary: llmText ? { method: 'llm', text: llmText } : null,
    });

    await step('store', 0.9);
    const keys = analysisKeys(scope.tenantId, document.id);
    // Markdown first, JSON last: the JSON is what readers look for, so it never points at a missing twin.
    await deps.objects.put(keys.markdown, Buffer.from(analysisMarkdown(analysis)), { contentType: 'text/markdown; charset=utf-8' });
    await deps.objects.put(keys.json, Buffer.from(JSON.stringify(analysis)), { contentType: 'application/json' });
    // Deleted while it ran: what was just written must not outlive the document.
    if (!(await documents.get(scope, document.id))) {
      await Promise.all([deps.objects.delete(keys.json), deps.objects.delete(keys.markdown)]).catch(() => undefined);
      return finishCanceled(deps, scope, running);
    }
    const ready = await jobs.transition(scope, running.id, 'ready', { step: 'store', progress: 1 });
    if (ready) deps.publishJob(ready);
    deps.logger.info({ jobId: running.id, documentId: document.id, version: document.version, worker: deps.workerId }, 'analysis stored');
  } catch (err) {
    if (signal.reason instanceof AnalyzeWorkerStopping) throw signal.reason;
    if (signal.aborted || err instanceof AnalyzeCanceled) return finishCanceled(deps, scope, running);
    await finishFailed(deps, scope, running, err);
  }
}

async function finishCanceled(deps: AnalyzeDeps, scope: TenantScope, job: JobRow): Promise<void> {
  const canceled = await new JobsRepository(deps.db.knex).transition(scope, job.id, 'canceled');
  if (canceled) deps.publishJob(canceled);
}

async function finishFailed(deps: AnalyzeDeps, scope: TenantScope, job: JobRow, err: unknown): Promise<void> {
  const jobs = new JobsRepository(deps.db.knex);
  const message = (err as Error)?.message ?? String(err);
  const { code } = classify(err);
  if (isRetryable(err) && job.attempts < deps.maxAttempts) {
    const delayMs = retryDelayMs(deps.backoffMs, job.attempts);
    deps.logger.warn({ err, jobId: job.id, attempts: job.attempts, retryInMs: delayMs }, 'analyze failed; retrying');
    const queued = await jobs.transition(scope, job.id, 'queued', { error: `${message} (retrying in ${Math.round(delayMs / 1000)} s)`, errorCode: code });
    if (queued) {
      await deps.queue.publish(ANALYZE_QUEUE, analyzeMessage(queued, job.attempts + 1), { delayMs });
      deps.publishJob(queued);
    }
    return;
  }
  deps.logger.error({ err, jobId: job.id, code }, 'analyze job failed');
  const failed = await jobs.transition(scope, job.id, 'failed', { error: message, errorCode: code });
  await deps.queue.deadLetter(ANALYZE_QUEUE, analyzeMessage(job, job.attempts), `${code}: ${message}`);
  if (failed) deps.publishJob(failed);
}
