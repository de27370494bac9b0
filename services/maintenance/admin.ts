import { can, type Action } from '../../lib/auth/permissions.ts';
import { appError } from '../../lib/errors.ts';
import type { RagmeshContext } from '../../lib/runtime/service-kit.ts';

/**
 * The maintenance service's actions are deployment-wide; who may take one is the
 * permission table's word (lib/auth/permissions.ts), the same the gateway checked. A
 * call with no principal comes from inside the mesh (a test broker, the CLI over the
 * broker), trusted the way the transporter is; the api always attaches the caller's
 * principal. Returns who acts, for the audit.
 */
export function requireAllowed(ctx: RagmeshContext, action: Action, refusal = 'only an admin can do this'): string {
  const auth = ctx.meta.auth;
  if (!auth) return 'system';
  if (!can(auth, action)) throw appError('ADMIN_ONLY', refusal);
  return auth.userId;
}
