import type { Knex } from 'knex';
import { AuditRepository } from './audit.ts';
import { ChatsRepository } from './chats.ts';
import { ChunksRepository } from './chunks.ts';
import { DocumentsRepository } from './documents.ts';
import { JobsRepository } from './jobs.ts';
import { ModelReindexRepository } from './model-reindex.ts';
import { ModelsRepository } from './models.ts';
import { OutboxRepository } from './outbox.ts';
import { SearchRepository } from './search.ts';
import { SystemRepository } from './system.ts';
import { TenantsRepository } from './tenants.ts';

/**
 * Every repository over one database, made once per runtime (`runtime.stores.repos()`)
 * and handed to whoever needs one. Repositories hold no state but the knex instance,
 * so sharing them is free; constructing them in one place keeps SQL behind these types.
 */
export class Repositories {
  readonly audit: AuditRepository;
  readonly chats: ChatsRepository;
  readonly chunks: ChunksRepository;
  readonly documents: DocumentsRepository;
  readonly jobs: JobsRepository;
  readonly models: ModelsRepository;
  readonly modelReindex: ModelReindexRepository;
  readonly outbox: OutboxRepository;
  readonly search: SearchRepository;
  readonly system: SystemRepository;
  readonly tenants: TenantsRepository;

  constructor(readonly knex: Knex) {
    this.audit = new AuditRepository(knex);
    this.chats = new ChatsRepository(knex);
    this.chunks = new ChunksRepository(knex);
    this.documents = new DocumentsRepository(knex);
    this.jobs = new JobsRepository(knex);
    this.models = new ModelsRepository(knex);
    this.modelReindex = new ModelReindexRepository(knex);
    this.outbox = new OutboxRepository(knex);
    this.search = new SearchRepository(knex);
    this.system = new SystemRepository(knex);
    this.tenants = new TenantsRepository(knex);
  }

  /** Runs `work` in one transaction; repositories take the transaction as their `trx` argument. */
  transaction<T>(work: (trx: Knex.Transaction) => Promise<T>): Promise<T> {
    return this.knex.transaction(work);
  }
}

export { AuditRepository, ChatsRepository, ChunksRepository, DocumentsRepository, JobsRepository, ModelReindexRepository, ModelsRepository, OutboxRepository, SearchRepository, SystemRepository, TenantsRepository };
