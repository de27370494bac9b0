import type { JobMessage } from '../ports/job-queue.ts';
import type { JobRow } from '../repositories/jobs.ts';

/**
 * The one place a queue message is built. A message only says "work on job X"; the
 * job row is the truth, so nothing else (payload, status) travels in it.
 */
export function jobMessage(job: Pick<JobRow, 'id' | 'tenantId' | 'type'>, attempt: number): JobMessage {
  return { jobId: job.id, tenantId: job.tenantId, type: job.type, attempt: Math.max(1, attempt), enqueuedAt: new Date().toISOString() };
}

/** Reads a delivered body; null when it is not a job message (dead-lettered as such by the adapter). */
export function parseJobMessage(body: unknown): JobMessage | null {
  if (typeof body !== 'object' || body === null) return null;
  const m = body as Record<string, unknown>;
  if (typeof m.jobId !== 'string' || typeof m.tenantId !== 'string' || typeof m.type !== 'string') return null;
  const attempt = typeof m.attempt === 'number' && Number.isInteger(m.attempt) && m.attempt > 0 ? m.attempt : 1;
  const enqueuedAt = typeof m.enqueuedAt === 'string' ? m.enqueuedAt : new Date(0).toISOString();
  return { jobId: m.jobId, tenantId: m.tenantId, type: m.type, attempt, enqueuedAt };
}
