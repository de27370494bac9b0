import type { Logger } from 'pino';
import type { ObjectStore } from '../ports/object-store.ts';
import { tenantScope } from '../ports/tenant-scope.ts';
import type { VectorStore } from '../ports/vector-store.ts';
import type { SweepsRepository } from '../repositories/sweeps.ts';

/**
 * Finds what a crash or an interrupted request left behind and removes what is safe
 * to remove:
 * - uploads (`tenants/T/uploads/…`) that no document refers to, older than `minAgeMs`
 *   — presigned uploads never completed, or a request that died between its PUT and
 *   its row;
 * - artifacts (`tenants/T/documents/D/…`) of documents that no longer exist, or of
 *   versions older than the committed one, older than `minAgeMs`;
 * - vectors of documents that no longer exist, and vectors of document versions
 *   older than the committed one;
 * and reports, without touching, document rows whose upload object is gone (the
 * document stays searchable; only re-ingesting it would fail).
 * Live data is never touched: every removal is of something no row refers to.
 */
export interface OrphanSweepDeps {
  repo: SweepsRepository;
  objects: ObjectStore;
  vectors: VectorStore;
  /** Vector collections of every registered embedding model version. */
  collections: string[];
  minAgeMs: number;
  logger: Logger;
  now?: Date;
}

export interface OrphanSweepResult {
  uploadsRemoved: number;
  artifactsRemoved: number;
  vectorsRemoved: number;
  /** Document ids whose upload object is missing: reported, not removed. */
  rowsMissingObject: string[];
  /** Keys outside the known layout: reported, not removed. */
  unknownKeys: string[];
}

const UPLOAD_KEY = /^tenants\/([^/]+)\/uploads\/[^/]+$/;
const ARTIFACT_KEY = /^tenants\/([^/]+)\/documents\/([^/]+)\/(?:v(\d+)\/)?.+$/;

export async function sweepOrphans(deps: OrphanSweepDeps): Promise<OrphanSweepResult> {
  const now = (deps.now ?? new Date()).getTime();
  const result: OrphanSweepResult = { uploadsRemoved: 0, artifactsRemoved: 0, vectorsRemoved: 0, rowsMissingObject: [], unknownKeys: [] };

  // Objects, a page at a time so a large bucket is never held in memory.
  let uploads: string[] = [];
  let artifacts: Array<{ key: string; tenantId: string; documentId: string; version: number | null }> = [];
  const flush = async () => {
    const referenced = await deps.repo.referencedObjectKeys(uploads);
    for (const key of uploads) {
      if (referenced.has(key)) continue;
      await deps.objects.delete(key);
      result.uploadsRemoved++;
    }
    const byTenant = new Map<string, Set<string>>();
    for (const a of artifacts) byTenant.set(a.tenantId, (byTenant.get(a.tenantId) ?? new Set()).add(a.documentId));
    const existing = new Map<string, Map<string, number>>();
    for (const [tenantId, ids] of byTenant) existing.set(tenantId, await deps.repo.documentVersions(tenantId, [...ids]));
    for (const a of artifacts) {
      const version = existing.get(a.tenantId)!.get(a.documentId);
      // Kept: artifacts of the committed version, and of a newer one being built right now.
      if (version !== undefined && !(a.version !== null && a.version < version)) continue;
      await deps.objects.delete(a.key);
      result.artifactsRemoved++;
    }
    uploads = [];
    artifacts = [];
  };
  for await (const info of deps.objects.list('')) {
    const old = now - info.lastModified.getTime() >= deps.minAgeMs;
    const upload = UPLOAD_KEY.exec(info.key);
    const artifact = ARTIFACT_KEY.exec(info.key);
    if (upload) {
      if (old) uploads.push(info.key);
    } else if (artifact) {
      if (old) artifacts.push({ key: info.key, tenantId: artifact[1]!, documentId: artifact[2]!, version: artifact[3] ? Number(artifact[3]) : null });
    } else if (result.unknownKeys.length < 100) {
      result.unknownKeys.push(info.key);
    }
    if (uploads.length + artifacts.length >= 500) await flush();
  }
  await flush();

  // Vectors: per tenant and collection, documents with points against documents with rows.
  for (const tenantId of await deps.repo.tenantIds()) {
    const scope = tenantScope(tenantId);
    for (const collection of deps.collections) {
      let withPoints: string[];
      try {
        withPoints = await deps.vectors.documentIds(scope, collection);
      } catch (err) {
        // A collection of a registered version that never received a vector may not exist yet.
        deps.logger.debug({ err, collection }, 'vector collection not readable; skipped');
        continue;
      }
      if (withPoints.length === 0) continue;
      const versions = await deps.repo.documentVersions(tenantId, withPoints);
      const before = await deps.vectors.count(scope, collection);
      const gone = withPoints.filter((id) => !versions.has(id));
      await deps.vectors.deleteByDocument(scope, collection, gone);
      for (const [id, version] of versions) await deps.vectors.deleteByDocument(scope, collection, [id], { below: version });
      result.vectorsRemoved += before - (await deps.vectors.count(scope, collection));
    }
  }

  // Rows whose upload object is gone: reported only.
  let after: string | null = null;
  for (;;) {
    const page = await deps.repo.documentsWithObjects(after, 500);
    if (page.length === 0) break;
    for (const doc of page) {
      if (!(await deps.objects.stat(doc.objectKey)) && result.rowsMissingObject.length < 1000) result.rowsMissingObject.push(doc.id);
    }
    after = page.at(-1)!.id;
  }

  deps.logger.info(
    {
      uploadsRemoved: result.uploadsRemoved,
      artifactsRemoved: result.artifactsRemoved,
      vectorsRemoved: result.vectorsRemoved,
      rowsMissingObject: result.rowsMissingObject.length,
      unknownKeys: result.unknownKeys.length,
    },
    'orphan sweep done',
  );
  if (result.rowsMissingObject.length > 0) deps.logger.warn({ documents: result.rowsMissingObject.slice(0, 20) }, 'documents whose upload object is missing (not removed)');
  return result;
}
