import type { ServiceSchema } from 'moleculer';
import { appError } from '../../lib/errors.ts';
import { MODELS_SWITCHED_EVENT, modelLoader, modelsRepository, type ModelsSwitchedPayload } from '../../lib/models/runtime-access.ts';
import { AuditRepository } from '../../lib/repositories/audit.ts';
import type { FlagChange, ModelFlag, ModelVersionRow } from '../../lib/repositories/models.ts';
import { currentRequest } from '../../lib/logging.ts';
import type { RagmeshContext, Runtime } from '../../lib/runtime/service-kit.ts';

export interface ModelListEntry {
  alias: string;
  kind: string;
  activeVersion: string | null;
  previousVersion: string | null;
  versions: Array<Pick<ModelVersionRow, 'version' | 'status' | 'createdAt'>>;
}

export interface SwitchResult extends FlagChange {
  kind: string;
  warmedOn: string;
}

/**
 * Model flag actions of the maintenance service: `models.list`, `models.switch` and
 * `models.rollback`. A switch first warms the target version where it will serve
 * (emb.warm / ingest.ocrWarm verify every file and open the model), and only if that
 * succeeds flips the flag in Postgres — in one transaction with its audit row — and
 * broadcasts `models.switched`, on which every serving process loads the new version
 * while the old one keeps answering, then swaps. A version that fails verification
 * never becomes active. Wired by the lead: `actions: { ...modelActions(runtime) }`.
 */
export function modelActions(runtime: Runtime): NonNullable<ServiceSchema['actions']> {
  async function switchTo(ctx: RagmeshContext, alias: string, version: string, action: 'models.switch' | 'models.rollback'): Promise<SwitchResult> {
    const actor = requireAdmin(ctx);
    const repo = await modelsRepository(runtime);
    const row = await repo.get(alias, version);
    if (!row) throw appError('MODEL_VERSION_NOT_FOUND', `${alias}@${version} is not registered; publish it first (npm run models -- publish <folder>)`);

    // Warm-up: where the model will serve, so a broken or tampered version fails here.
    let warmedOn: string;
    if (row.kind === 'embed') {
      await ctx.call('emb.warm', { alias, version });
      warmedOn = 'emb';
    } else if (row.kind === 'ocr') {
      await ctx.call('ingest.ocrWarm', { alias, version });
      warmedOn = 'ingest';
    } else {
      // No runtime serves llm/rerank files yet: verifying them is the warm-up.
      await (await modelLoader(runtime)).materialize(row.manifest);
      warmedOn = 'maintenance';
    }

    const db = await runtime.stores.db();
    const change = await db.knex.transaction(async (trx) => {
      const flip = await repo.switchTo(alias, version, actor, trx);
      await new AuditRepository(db.knex).record(
        null,
        { actor, action, target: `${alias}@${version}`, details: { from: flip.from, to: flip.to, kind: row.kind }, requestId: currentRequest()?.requestId ?? ctx.requestID ?? null },
        trx,
      );
      return flip;
    });
    if (change.from !== change.to) {
      const payload: ModelsSwitchedPayload = { alias, kind: row.kind, version, previous: change.from };
      await ctx.broadcast(MODELS_SWITCHED_EVENT, payload);
    }
    return { ...change, kind: row.kind, warmedOn };
  }

  return {
    'models.list': {
      async handler(ctx: RagmeshContext): Promise<ModelListEntry[]> {
        requireAdmin(ctx);
        const repo = await modelsRepository(runtime);
        const versions = await repo.listVersions();
        const flags = new Map<string, ModelFlag>();
        for (const alias of new Set(versions.map((v) => v.alias))) {
          const flag = await repo.getFlag(alias);
          if (flag) flags.set(alias, flag);
        }
        const byAlias = new Map<string, ModelListEntry>();
        for (const v of versions) {
          const entry = byAlias.get(v.alias) ?? {
            alias: v.alias,
            kind: v.kind,
            activeVersion: flags.get(v.alias)?.activeVersion ?? null,
            previousVersion: flags.get(v.alias)?.previousVersion ?? null,
            versions: [],
          };
          entry.versions.push({ version: v.version, status: v.status, createdAt: v.createdAt });
          byAlias.set(v.alias, entry);
        }
        return [...byAlias.values()];
      },
    },

    'models.switch': {
      params: { alias: { type: 'string', min: 1 }, version: { type: 'string', min: 1 } },
      handler(ctx: RagmeshContext<{ alias: string; version: string }>): Promise<SwitchResult> {
        return switchTo(ctx, ctx.params.alias, ctx.params.version, 'models.switch');
      },
    },

    'models.rollback': {
      params: { alias: { type: 'string', min: 1 } },
      async handler(ctx: RagmeshContext<{ alias: string }>): Promise<SwitchResult> {
        const target = await (await modelsRepository(runtime)).rollbackTarget(ctx.params.alias);
        return switchTo(ctx, ctx.params.alias, target, 'models.rollback');
      },
    },
  };
}

/**
 * Model flags are deployment-wide: only an admin may change them. A call with no
 * principal comes from inside the mesh (the CLI, a test broker), which is trusted
 * the way the transporter is; the api always attaches the caller's principal.
 */
function requireAdmin(ctx: RagmeshContext): string {
  const auth = ctx.meta.auth;
  if (!auth) return 'system';
  if (!auth.roles.includes('admin')) throw appError('ADMIN_ONLY', 'only an admin can change model versions');
  return auth.userId;
}
