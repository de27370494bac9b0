import { QdrantClient } from '@qdrant/js-client-rest';
import type { TenantScope } from '../../ports/tenant-scope.ts';
import {
  assertCollectionName,
  type CollectionSpec,
  type VectorFilter,
  type VectorHit,
  type VectorPayload,
  type VectorPoint,
  type VectorStore,
  type VersionSelector,
} from '../../ports/vector-store.ts';

type Condition = { key: string; match: { value: string } | { any: string[] } };

/**
 * Qdrant for the mesh. Tenant isolation lives in the payload: every point carries
 * tenant_id, indexed with `is_tenant` so Qdrant co-locates a tenant's points, and
 * every read, count and delete here adds the tenant condition itself.
 */
export class QdrantVectorStore implements VectorStore {
  readonly backend = 'qdrant' as const;
  private readonly client: QdrantClient;

  constructor(url: string, apiKey: string | null) {
    this.client = new QdrantClient({ url, apiKey: apiKey ?? undefined, checkCompatibility: false });
  }

  async ensureCollection(spec: CollectionSpec): Promise<void> {
    const name = assertCollectionName(spec.name);
    if ((await this.client.collectionExists(name)).exists) {
      const info = await this.client.getCollection(name);
      const size = (info.config.params.vectors as { size?: number } | undefined)?.size;
      if (size !== spec.dimension) throw new Error(`Collection ${name} has dimension ${size}, not ${spec.dimension}`);
      return;
    }
    try {
      await this.client.createCollection(name, { vectors: { size: spec.dimension, distance: 'Cosine' } });
    } catch (err) {
      // Created concurrently by another first job: the payload indexes below are
      // idempotent, so this one makes sure they exist too instead of assuming the other got that far.
      if (!(await this.client.collectionExists(name)).exists) throw err;
    }
    await this.client.createPayloadIndex(name, {
      field_name: 'tenant_id',
      field_schema: { type: 'keyword', is_tenant: true },
      wait: true,
    });
    for (const field of ['document_id', 'source_id', 'tags', 'lang', 'mime']) {
      await this.client.createPayloadIndex(name, { field_name: field, field_schema: 'keyword', wait: true });
    }
  }

  async dropCollection(name: string): Promise<void> {
    await this.client.deleteCollection(assertCollectionName(name));
  }

  async upsert(scope: TenantScope, collection: string, points: VectorPoint[]): Promise<void> {
    if (points.length === 0) return;
    await this.client.upsert(assertCollectionName(collection), {
      wait: true,
      points: points.map((p) => ({
        id: p.id,
        vector: Array.from(p.vector),
        payload: { ...p.payload, tenant_id: scope.tenantId },
      })),
    });
  }

  async search(
    scope: TenantScope,
    collection: string,
    vector: Float32Array | number[],
    options: { limit: number; filter?: VectorFilter },
  ): Promise<VectorHit[]> {
    const result = await this.client.query(assertCollectionName(collection), {
      query: Array.from(vector),
      filter: { must: conditions(scope, options.filter) },
      limit: Math.max(1, Math.min(options.limit, 1000)),
      with_payload: true,
    });
    return result.points.map((p) => ({
      id: String(p.id),
      score: p.score,
      payload: p.payload as unknown as VectorPayload & { tenant_id: string },
    }));
  }

  async deleteByDocument(scope: TenantScope, collection: string, documentIds: string[], versions?: VersionSelector): Promise<void> {
    if (documentIds.length === 0) return;
    const must: Array<Condition | { key: string; range: { lt: number } } | { key: string; match: { value: number } }> = conditions(scope, { documentIds });
    if (versions && 'only' in versions) must.push({ key: 'version', match: { value: versions.only } });
    if (versions && 'below' in versions) must.push({ key: 'version', range: { lt: versions.below } });
    await this.client.delete(assertCollectionName(collection), { wait: true, filter: { must } });
  }

  async count(scope: TenantScope, collection: string): Promise<number> {
    const result = await this.client.count(assertCollectionName(collection), {
      filter: { must: conditions(scope) },
      exact: true,
    });
    return result.count;
  }

  async documentIds(scope: TenantScope, collection: string): Promise<string[]> {
    const ids = new Set<string>();
    let offset: string | number | null | undefined;
    do {
      const page = await this.client.scroll(assertCollectionName(collection), {
        filter: { must: conditions(scope) },
        with_payload: ['document_id'],
        with_vector: false,
        limit: 1000,
        ...(offset !== undefined && offset !== null ? { offset } : {}),
      });
      for (const point of page.points) ids.add(String((point.payload as { document_id?: string } | null)?.document_id));
      offset = page.next_page_offset as string | number | null | undefined;
    } while (offset !== undefined && offset !== null);
    return [...ids].sort();
  }

  /**
   * Re-points the Qdrant alias `alias` at `collection`: the delete of the old alias and
   * the create of the new one go in one update_aliases request, which Qdrant applies
   * atomically, so a reader of the alias never finds it missing or half switched.
   */
  async activate(alias: string, collection: string): Promise<void> {
    const name = assertCollectionName(alias);
    const { aliases } = await this.client.getAliases();
    const current = aliases.find((a) => a.alias_name === name);
    if (current?.collection_name === collection) return;
    await this.client.updateCollectionAliases({
      actions: [
        ...(current ? [{ delete_alias: { alias_name: name } }] : []),
        { create_alias: { collection_name: assertCollectionName(collection), alias_name: name } },
      ],
    });
  }

  async ping(): Promise<void> {
    await this.client.versionInfo();
  }

  async close(): Promise<void> {}
}

function conditions(scope: TenantScope, filter?: VectorFilter): Condition[] {
  const must: Condition[] = [{ key: 'tenant_id', match: { value: scope.tenantId } }];
  const any = (key: string, values?: string[]) => {
    if (values?.length) must.push({ key, match: { any: values } });
  };
  any('document_id', filter?.documentIds);
  any('source_id', filter?.sourceIds);
  any('tags', filter?.tags);
  any('lang', filter?.langs);
  any('mime', filter?.mimes);
  return must;
}
