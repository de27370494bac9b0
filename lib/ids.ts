import { createHash } from 'node:crypto';

/** The one shape of the ids ragmesh hands out (documents, jobs, chats, uploads): a UUID. */
export const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export const isUuid = (value: unknown): value is string => typeof value === 'string' && UUID_PATTERN.test(value);

/**
 * A UUID (RFC 9562 version 8) that is a digest of `parts`: the same parts always give
 * the same id. Work that may run twice (a redelivered job) then names what it writes
 * the same way both times, and the second run overwrites the first instead of
 * leaving its writes behind.
 */
export function uuidFromParts(...parts: Array<string | number>): string {
  const hex = createHash('sha256').update(parts.join('\u0000')).digest('hex');
  const variant = ((parseInt(hex[16]!, 16) & 0x3) | 0x8).toString(16);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-8${hex.slice(13, 16)}-${variant}${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}
