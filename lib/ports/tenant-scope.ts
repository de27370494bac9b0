import { appError } from '../errors.ts';

declare const scopeBrand: unique symbol;

/**
 * The tenant a data access is limited to. Only `tenantScope()` makes one, after
 * checking the id, so a repository that receives a TenantScope knows it is valid.
 */
export interface TenantScope {
  readonly tenantId: string;
  readonly [scopeBrand]: true;
}

export const TENANT_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export function tenantScope(tenantId: string): TenantScope {
  if (typeof tenantId !== 'string' || !TENANT_ID_PATTERN.test(tenantId)) {
    throw appError('INVALID_TENANT', 'Tenant id must be 1-64 characters of letters, digits, ".", "_" or "-".');
  }
  return Object.freeze({ tenantId }) as TenantScope;
}
