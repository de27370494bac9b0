import type { Logger } from 'pino';
import { analysisKeys, analysisMarkdown, buildAnalysis, detectLanguage, fullText, type Analysis } from '../../lib/analyze/analysis.ts';
import { appError } from '../../lib/errors.ts';
import type { ExtractedDocument } from '../../lib/extract/types.ts';
import type { JobHandler } from '../../lib/jobs/worker.ts';
import type { ObjectStore } from '../../lib/ports/object-store.ts';
import type { Repositories } from '../../lib/repositories/index.ts';
import type { JobRow } from '../../lib/repositories/jobs.ts';
import { artifactKeys } from '../ingest/job-model.ts';
import { readAll } from '../../lib/streams.ts';

/** Largest text whose lexemes are counted for key terms (the rest of a huge document adds little). */
const TERMS_TEXT_LIMIT = 400_000;
/** How soon an analysis waiting for its document's ingest looks again. */
const WAIT_FOR_INGEST_MS = 500;

export interface AnalyzeDeps {
  repos: Repositories;
  objects: ObjectStore;
  logger: Pick<Logger, 'info' | 'warn'>;
  /** A summary from the configured LLM backend, or null to keep the extractive one. */
  llmSummary?: (job: JobRow, text: string, language: string, signal: AbortSignal) => Promise<string | null>;
}

/**
 * The analyze job type's handler: read the document's extracted pages (ingest's
 * stored result), compute the analysis, store it as Markdown and JSON. Claiming,
 * leases, retries, dead letters and cancels are the jobs module's (lib/jobs/worker.ts);
 * until the document's current version is indexed, the job waits queued (`notYet`).
 */
export function analyzeHandler(deps: AnalyzeDeps): JobHandler<'analyze'> {
  const { repos } = deps;
  return {
    type: 'analyze',
    async notYet({ scope, payload }) {
      const document = await repos.documents.get(scope, payload.documentId);
      return document && (document.status === 'queued' || document.status === 'running') ? WAIT_FOR_INGEST_MS : null;
    },
    async run(run) {
      const { scope, job, payload, signal } = run;
      const document = await repos.documents.get(scope, payload.documentId);
      if (!document) throw appError('DOCUMENT_DELETED', 'The document of this job was deleted');
      await run.progress('read', 0.1);
      if (document.status !== 'ready') throw appError('DOCUMENT_NOT_READY', `The document is ${document.status}: it has no text to analyze`);
      const extractedKey = artifactKeys(scope.tenantId, document.id, document.version).extracted;
      if (!(await deps.objects.stat(extractedKey))) throw appError('NO_EXTRACTED_TEXT', 'The extracted text of this version is gone; upload the document again');
      const extracted = JSON.parse((await readAll(await deps.objects.get(extractedKey))).toString('utf8')) as ExtractedDocument;
      const text = fullText(extracted);

      await run.progress('terms', 0.4);
      const language = detectLanguage(text);
      const config = language === 'ru' ? 'russian' : language === 'en' ? 'english' : 'simple';
      const lexemes = ((await repos.search.analyze(scope, text.slice(0, TERMS_TEXT_LIMIT), [config])).get(config) ?? []).map((l) => ({ term: l.term, tf: l.qtf }));
      const [df, stats] = await Promise.all([repos.search.documentFrequencies(scope, config, lexemes.map((l) => l.term)), repos.search.stats(scope)]);

      await run.progress('summary', 0.7);
      const llmText = deps.llmSummary
        ? await deps.llmSummary(job, text, language, signal).catch((err: unknown) => {
            deps.logger.warn({ err, jobId: job.id }, 'llm summary failed; keeping the extractive one');
            return null;
          })
        : null;
      const analysis: Analysis = buildAnalysis({
        documentId: document.id,
        version: document.version,
        extracted: { ...extracted, title: document.title ?? extracted.title ?? document.filename },
        terms: { lexemes, df, corpusSize: stats.chunksPerConfig[config] ?? stats.chunkCount },
        summary: llmText ? { method: 'llm', text: llmText } : null,
      });

      await run.progress('store', 0.9);
      const keys = analysisKeys(scope.tenantId, document.id);
      // Markdown first, JSON last: the JSON is what readers look for, so it never points at a missing twin.
      await deps.objects.put(keys.markdown, Buffer.from(analysisMarkdown(analysis)), { contentType: 'text/markdown; charset=utf-8' });
      await deps.objects.put(keys.json, Buffer.from(JSON.stringify(analysis)), { contentType: 'application/json' });
      // Deleted while it ran: what was just written must not outlive the document (the job ends canceled).
      if (!(await repos.documents.get(scope, document.id))) {
        await Promise.all([deps.objects.delete(keys.json), deps.objects.delete(keys.markdown)]).catch(() => undefined);
        throw appError('DOCUMENT_DELETED', 'The document of this job was deleted');
      }
      await repos.transaction((trx) => run.markReady(trx, { step: 'store', progress: 1 }));
      deps.logger.info({ jobId: job.id, documentId: document.id, version: document.version }, 'analysis stored');
    },
  };
}
