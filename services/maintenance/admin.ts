import { appError } from '../../lib/errors.ts';
import type { RagmeshContext } from '../../lib/runtime/service-kit.ts';

/**
 * The maintenance service's actions are deployment-wide: only an admin may take them.
 * A call with no principal comes from inside the mesh (a test broker, the CLI over the
 * broker), trusted the way the transporter is; the api always attaches the caller's
 * principal. Returns who acts, for the audit.
 */
export function requireAdmin(ctx: RagmeshContext, refusal = 'only an admin can do this'): string {
  const auth = ctx.meta.auth;
  if (!auth) return 'system';
  if (!auth.roles.includes('admin')) throw appError('ADMIN_ONLY', refusal);
  return auth.userId;
}
