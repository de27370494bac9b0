import type { Knex } from 'knex';
import { appError } from '../errors.ts';
import type { DocumentRow, DocumentStatus } from '../repositories/documents.ts';
import type { Repositories } from '../repositories/index.ts';
import type { JobRow } from '../repositories/jobs.ts';
import type { TenantScope } from '../ports/tenant-scope.ts';

/**
 * Payload type of each job type, by name. A job type adds itself by declaration
 * merging, next to its definition:
 *
 *   declare module '../registry.ts' { interface JobPayloads { analyze: AnalyzePayload } }
 *
 * so `enqueueJob(ctx, scope, { type: 'analyze', payload })` is checked at compile time
 * and `payloadOf(job)` returns the right type after a run-time validation.
 */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface JobPayloads {}

export type JobTypeName = keyof JobPayloads & string;

export interface JobTypeDefinition<T extends JobTypeName = JobTypeName> {
  type: T;
  /** The queue its messages go to; consumers of that queue run it. */
  queue: string;
  /** Validates a payload read from a row or given to enqueue; throws INVALID_JOB_PAYLOAD. */
  parse(raw: unknown): JobPayloads[T];
  /** The document a job works on, if any: its status follows the job's (see settleDocumentStatus). */
  documentOf?(payload: JobPayloads[T]): string | null;
  /** Same input, same job: a second enqueue with this key returns the first job. */
  idempotencyKey(payload: JobPayloads[T]): string;
  /**
   * The document's status after the job failed or was canceled; absent = the job
   * leaves its document's status alone (e.g. a re-index of a ready document).
   */
  documentStatusAfter?(payload: JobPayloads[T], document: DocumentRow, outcome: 'failed' | 'canceled'): DocumentStatus;
  /**
   * What else the job's end without success changes (a re-index marks its row failed
   * or canceled), in the transaction that records that end (see settleJobOutcome).
   */
  settle?(repos: Repositories, scope: TenantScope, payload: JobPayloads[T], job: JobRow, outcome: 'failed' | 'canceled', trx?: Knex): Promise<void>;
  /** Files the job owns until it finishes (an upload not yet committed): removed with its document. */
  filesOf?(payload: JobPayloads[T]): string[];
}

const definitions = new Map<string, JobTypeDefinition>();

/** Registers a job type; each type module calls it once at import (lib/jobs/types/index.ts imports them all). */
export function defineJobType<T extends JobTypeName>(definition: JobTypeDefinition<T>): JobTypeDefinition<T> {
  const existing = definitions.get(definition.type);
  if (existing && existing !== (definition as unknown as JobTypeDefinition)) throw new Error(`Job type ${definition.type} is defined twice`);
  definitions.set(definition.type, definition as unknown as JobTypeDefinition);
  return definition;
}

export function jobTypeOf(type: string): JobTypeDefinition {
  const definition = definitions.get(type);
  if (!definition) throw appError('UNKNOWN_JOB_TYPE', `Unknown job type ${type}`, { type });
  return definition;
}

export function jobTypes(): JobTypeDefinition[] {
  return [...definitions.values()];
}

/** A job row's payload validated by its own type's definition, with that definition. */
export function definitionAndPayload(job: Pick<JobRow, 'type' | 'payload'>): { definition: JobTypeDefinition; payload: JobPayloads[JobTypeName] } {
  const definition = jobTypeOf(job.type);
  return { definition, payload: definition.parse(job.payload) };
}

/** The validated payload of a job row of type `T`. */
export function payloadOf<T extends JobTypeName>(job: Pick<JobRow, 'type' | 'payload'>, type: T): JobPayloads[T] {
  if (job.type !== type) throw appError('INVALID_JOB_PAYLOAD', `A ${job.type} job is not a ${type} job`, { type: job.type });
  return (jobTypeOf(type) as unknown as JobTypeDefinition<T>).parse(job.payload);
}

/** A small reader for payload validators: each field checked, the first bad one named. */
export class PayloadReader {
  constructor(
    private readonly type: string,
    private readonly raw: unknown,
  ) {
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) this.fail('payload', 'an object');
  }
  private get obj() {
    return this.raw as Record<string, unknown>;
  }
  private fail(field: string, expected: string): never {
    throw appError('INVALID_JOB_PAYLOAD', `Invalid ${this.type} job payload: ${field} must be ${expected}`, { type: this.type, field });
  }
  string(field: string): string {
    const v = this.obj[field];
    if (typeof v !== 'string' || v.length === 0) this.fail(field, 'a non-empty string');
    return v;
  }
  stringOrNull(field: string): string | null {
    const v = this.obj[field];
    if (v === null || v === undefined) return null;
    if (typeof v !== 'string') this.fail(field, 'a string or null');
    return v;
  }
  int(field: string, min = 0): number {
    const v = this.obj[field];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min) this.fail(field, `an integer ≥ ${min}`);
    return v;
  }
  strings(field: string): string[] {
    const v = this.obj[field];
    if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) this.fail(field, 'an array of strings');
    return v as string[];
  }
  oneOf<const V extends string>(field: string, values: readonly V[]): V {
    const v = this.obj[field];
    if (typeof v !== 'string' || !values.includes(v as V)) this.fail(field, `one of ${values.join(', ')}`);
    return v as V;
  }
}
