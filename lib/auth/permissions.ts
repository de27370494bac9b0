import { appError } from '../errors.ts';
import { ROLES, type Principal, type Role } from './jwt.ts';

/**
 * The one permission table of ragmesh: every action a caller can take, the roles that
 * may take it, and the rate-limit class it is counted in. Routes name an action from
 * here (the gateway refuses to boot on a route without one), and service actions
 * reached from elsewhere (the maintenance service's) check `can` with the same names,
 * so no role check is written by hand anywhere else.
 *
 * Roles: viewer reads and asks; editor also writes documents; tenant_admin also
 * manages the users, API keys and audit of their own tenant; admin runs the
 * deployment (models, maintenance, backups, dead letters) and has every tenant
 * power within its own tenant. Nobody acts outside their own tenant: the tenant
 * always comes from the verified credential.
 */
export type RateClass = 'read' | 'search' | 'chat' | 'upload' | 'admin' | 'openai';
export const RATE_CLASSES: readonly RateClass[] = ['read', 'search', 'chat', 'upload', 'admin', 'openai'];

export interface Permission {
  roles: readonly Role[];
  rate: RateClass;
}

const ALL: readonly Role[] = ROLES;
const WRITERS: readonly Role[] = ['editor', 'admin', 'tenant_admin'];
const TENANT_ADMINS: readonly Role[] = ['admin', 'tenant_admin'];
const ADMINS: readonly Role[] = ['admin'];

export const PERMISSIONS = {
  'me.read': { roles: ALL, rate: 'read' },
  'status.read': { roles: TENANT_ADMINS, rate: 'admin' },

  'documents.read': { roles: ALL, rate: 'read' },
  'documents.upload': { roles: WRITERS, rate: 'upload' },
  'documents.delete': { roles: WRITERS, rate: 'upload' },
  'analyses.read': { roles: ALL, rate: 'read' },
  'analyses.create': { roles: WRITERS, rate: 'upload' },
  'jobs.read': { roles: ALL, rate: 'read' },
  'jobs.cancel': { roles: WRITERS, rate: 'upload' },
  'jobs.retry': { roles: WRITERS, rate: 'upload' },

  search: { roles: ALL, rate: 'search' },
  'chats.read': { roles: ALL, rate: 'read' },
  'chats.write': { roles: ALL, rate: 'chat' },
  'chats.ask': { roles: ALL, rate: 'chat' },

  'openai.models': { roles: ALL, rate: 'openai' },
  'openai.embeddings': { roles: ALL, rate: 'openai' },
  'openai.chat': { roles: ALL, rate: 'openai' },

  'users.read': { roles: TENANT_ADMINS, rate: 'admin' },
  'users.manage': { roles: TENANT_ADMINS, rate: 'admin' },
  'apiKeys.manage': { roles: TENANT_ADMINS, rate: 'admin' },
  'audit.read': { roles: TENANT_ADMINS, rate: 'admin' },

  'deadLetters.read': { roles: ADMINS, rate: 'admin' },
  'deadLetters.replay': { roles: ADMINS, rate: 'admin' },
  // Model status and re-index progress (a tenant_admin's own tenant only); every change is the admin's.
  'models.read': { roles: TENANT_ADMINS, rate: 'admin' },
  'models.manage': { roles: ADMINS, rate: 'admin' },
  // Whether maintenance mode is on is no secret (/api/version shows it too); switching it is the admin's.
  'maintenance.read': { roles: TENANT_ADMINS, rate: 'admin' },
  'maintenance.manage': { roles: ADMINS, rate: 'admin' },
  'backups.manage': { roles: ADMINS, rate: 'admin' },
  'sweeps.run': { roles: ADMINS, rate: 'admin' },
  // Not a route: what decides whether a reader sees every tenant (deployment-wide audit
  // entries, every tenant's re-index progress and model state) or its own tenant only.
  'deployment.read': { roles: ADMINS, rate: 'admin' },
} as const satisfies Record<string, Permission>;

export type Action = keyof typeof PERMISSIONS;

export function isAction(name: string): name is Action {
  return Object.hasOwn(PERMISSIONS, name);
}

export function permissionOf(action: Action): Permission {
  return PERMISSIONS[action];
}

/** Whether any of the caller's roles may take the action. */
export function can(principal: Pick<Principal, 'roles'> | undefined | null, action: Action): boolean {
  if (!principal) return false;
  const allowed = PERMISSIONS[action].roles as readonly Role[];
  return principal.roles.some((role) => allowed.includes(role));
}

/** Throws 401 without a caller and 403 when no role of theirs may take the action; returns the caller. */
export function requirePermission(principal: Principal | undefined | null, action: Action): Principal {
  if (!principal) throw appError('MISSING_TOKEN', 'Send an access token: Authorization: Bearer <token>');
  if (!can(principal, action)) {
    throw appError('FORBIDDEN', `"${action}" needs one of the roles: ${PERMISSIONS[action].roles.join(', ')}`);
  }
  return principal;
}

/**
 * Roles a granter may hand out (to an API key or a user): never more than they hold,
 * and `admin`, a deployment-wide power, only by an admin.
 */
export function grantableRoles(granter: Pick<Principal, 'roles'>): Role[] {
  if (granter.roles.includes('admin')) return [...ROLES];
  if (granter.roles.includes('tenant_admin')) return ['viewer', 'editor', 'tenant_admin'];
  return [];
}
