import { createHash, randomUUID } from 'node:crypto';
import type { KeyValueStore } from '../ports/key-value.ts';
import type { TenantScope } from '../ports/tenant-scope.ts';

/** How long an answer is reused, and how long a document's generation is remembered. */
export const ANSWER_TTL_MS = 24 * 60 * 60 * 1000;
const GENERATION_TTL_MS = 30 * 24 * 60 * 60 * 1000;

const generationKey = (scope: TenantScope, documentId: string) => `answers-gen:${scope.tenantId}:${documentId}`;
/** One marker per (document, cached answer citing it): the key family a document's answers are found by. */
const citedByPrefix = (scope: TenantScope, documentId: string) => `answers-of:${scope.tenantId}:${documentId}:`;

/**
 * Every document has a generation in the KV store; a cached answer's key includes the
 * generations of the documents it drew from. Changing a document (new version,
 * re-index, delete) gives it a new generation, so every answer that cited it stops
 * matching at once, without finding those answers.
 */
export async function invalidateAnswersForDocuments(kv: KeyValueStore, scope: TenantScope, documentIds: string[]): Promise<void> {
  await Promise.all(documentIds.map((id) => kv.set(generationKey(scope, id), randomUUID(), GENERATION_TTL_MS)));
  await purgeAnswersCiting(kv, scope, documentIds);
}

/**
 * A deleted document leaves no key behind: the answers that cited it and its
 * generation are removed (a new generation is not needed — ids are never reused).
 */
export async function forgetDocumentAnswers(kv: KeyValueStore, scope: TenantScope, documentIds: string[]): Promise<void> {
  await purgeAnswersCiting(kv, scope, documentIds);
  await Promise.all(documentIds.map((id) => kv.delete(generationKey(scope, id))));
}

/** Stores a RAG answer, with a marker under each cited document so the document's answers can be found and removed. */
export async function storeAnswer(kv: KeyValueStore, scope: TenantScope, key: string, documentIds: string[], value: string): Promise<void> {
  await kv.set(key, value, ANSWER_TTL_MS);
  const digest = key.slice(key.lastIndexOf(':') + 1);
  await Promise.all([...new Set(documentIds)].map((id) => kv.set(`${citedByPrefix(scope, id)}${digest}`, key, ANSWER_TTL_MS)));
}

async function purgeAnswersCiting(kv: KeyValueStore, scope: TenantScope, documentIds: string[]): Promise<void> {
  for (const id of documentIds) {
    for (const marker of await kv.deleteByPrefix(citedByPrefix(scope, id))) {
      await kv.delete(`answers:${scope.tenantId}:${marker.slice(marker.lastIndexOf(':') + 1)}`);
    }
  }
}

export async function documentGenerations(kv: KeyValueStore, scope: TenantScope, documentIds: string[]): Promise<string[]> {
  return Promise.all(documentIds.map(async (id) => `${id}@${(await kv.get(generationKey(scope, id))) ?? '0'}`));
}

/** Lower case, single spaces, no trailing punctuation: "What is X?" and "what is  x" share an answer. */
export function normalizeQuestion(question: string): string {
  return question.normalize('NFC').toLowerCase().replace(/\s+/g, ' ').replace(/[\s?!.…]+$/u, '').trim();
}

/**
 * Key = normalized question + hash of the top-N chunk ids + model version, plus the
 * generations of the documents behind those chunks.
 */
export async function answerCacheKey(
  kv: KeyValueStore,
  scope: TenantScope,
  input: { question: string; chunkIds: string[]; documentIds: string[]; modelVersion: string },
): Promise<string> {
  const generations = await documentGenerations(kv, scope, [...new Set(input.documentIds)].sort());
  const digest = createHash('sha256')
    .update(JSON.stringify([normalizeQuestion(input.question), input.chunkIds, input.modelVersion, generations]))
    .digest('hex');
  return `answers:${scope.tenantId}:${digest}`;
}
