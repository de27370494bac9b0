import type { Knex } from 'knex';
import { appError } from '../errors.ts';
import { validateManifest, type ModelKind, type ModelManifest } from '../models/manifest.ts';

/**
 * Registered model versions and the flag that says which version serves each alias.
 * Models are deployment-wide, not tenant-owned, so nothing here takes a tenant scope.
 * The manifest stored at registration is the one loads are verified against.
 */

export interface ModelVersionRow {
  alias: string;
  version: string;
  kind: ModelKind;
  manifest: ModelManifest;
  status: string;
  createdAt: Date;
}

export interface ModelFlag {
  alias: string;
  activeVersion: string;
  previousVersion: string | null;
  updatedBy: string | null;
  updatedAt: Date;
}

export interface ActiveModel {
  flag: ModelFlag;
  model: ModelVersionRow;
}

export interface FlagChange {
  alias: string;
  from: string | null;
  to: string;
}

export class ModelsRepository {
  constructor(private readonly knex: Knex) {}

  /**
   * Records a version. Publishing the same bytes again is a no-op; publishing
   * different bytes under an existing alias+version is refused, since vectors already
   * written under that version would no longer match the model.
   */
  async register(manifest: ModelManifest): Promise<ModelVersionRow> {
    validateManifest(manifest);
    const existing = await this.get(manifest.alias, manifest.version);
    if (existing) {
      if (sameFiles(existing.manifest, manifest)) return existing;
      throw appError('MODEL_VERSION_EXISTS', `${manifest.alias}@${manifest.version} is already registered with different files; publish under a new version`);
    }
    await this.knex('models')
      .insert({ alias: manifest.alias, version: manifest.version, kind: manifest.kind, manifest: JSON.stringify(manifest), status: 'registered' })
      .onConflict(['alias', 'version'])
      .ignore();
    return (await this.get(manifest.alias, manifest.version))!;
  }

  async get(alias: string, version: string): Promise<ModelVersionRow | null> {
    const row = await this.knex('models').where({ alias, version }).first();
    return row ? toVersion(row) : null;
  }

  async listVersions(alias?: string): Promise<ModelVersionRow[]> {
    const query = this.knex('models').orderBy([{ column: 'alias' }, { column: 'created_at' }]);
    if (alias) query.where({ alias });
    return (await query).map(toVersion);
  }

  async getFlag(alias: string): Promise<ModelFlag | null> {
    const row = await this.knex('model_flags').where({ alias }).first();
    return row ? toFlag(row) : null;
  }

  /** Active versions, optionally of one kind: what a service should be serving. */
  async listActive(kind?: ModelKind): Promise<ActiveModel[]> {
    const query = this.knex('model_flags as f')
      .join('models as m', (j) => j.on('m.alias', 'f.alias').andOn('m.version', 'f.active_version'))
      .select('f.alias', 'f.active_version', 'f.previous_version', 'f.updated_by', 'f.updated_at', 'm.version', 'm.kind', 'm.manifest', 'm.status', 'm.created_at')
      .orderBy('f.alias');
    if (kind) query.where('m.kind', kind);
    return (await query).map((row: Record<string, unknown>) => ({ flag: toFlag(row), model: toVersion(row) }));
  }

  async getActive(alias: string): Promise<ActiveModel | null> {
    const all = await this.listActive();
    return all.find((a) => a.flag.alias === alias) ?? null;
  }

  /**
   * Points `alias` at `version` in one transaction, the old active version kept as
   * previous_version (which is what rollback returns to). The flag row is locked so
   * two concurrent switches serialize instead of losing one previous_version.
   */
  async switchTo(alias: string, version: string, actor: string | null, trx?: Knex.Transaction): Promise<FlagChange> {
    const run = async (t: Knex.Transaction): Promise<FlagChange> => {
      const model = await t('models').where({ alias, version }).first();
      if (!model) throw appError('MODEL_VERSION_NOT_FOUND', `${alias}@${version} is not registered`);
      const flag = await t('model_flags').where({ alias }).forUpdate().first();
      if (!flag) {
        await t('model_flags').insert({ alias, active_version: version, previous_version: null, updated_by: actor, updated_at: t.fn.now() });
        return { alias, from: null, to: version };
      }
      if (flag.active_version === version) return { alias, from: version, to: version };
      await t('model_flags')
        .where({ alias })
        .update({ active_version: version, previous_version: flag.active_version, updated_by: actor, updated_at: t.fn.now() });
      return { alias, from: flag.active_version as string, to: version };
    };
    return trx ? run(trx) : this.knex.transaction(run);
  }

  /**
   * Embedding versions whose collections are kept current: the active and previous
   * version of each alias (rollback must find every document) and any version being
   * re-indexed or built beside them. Ingest writes a document's vectors to all of them.
   */
  async liveEmbedVersions(alias?: string): Promise<Array<{ alias: string; version: string }>> {
    const flags = this.knex('model_flags as f')
      .join('models as m', (j) => j.on('m.alias', 'f.alias').andOn('m.version', 'f.active_version'))
      .where('m.kind', 'embed')
      .select('f.alias', 'f.active_version', 'f.previous_version');
    if (alias) flags.where('f.alias', alias);
    const building = this.knex('model_reindex as r')
      .join('models as m', (j) => j.on('m.alias', 'r.alias').andOn('m.version', 'r.version'))
      .whereIn('r.state', ['running', 'done'])
      .distinct('r.alias', 'r.version');
    if (alias) building.where('r.alias', alias);
    const registered = this.knex('models').where({ kind: 'embed' }).select('alias', 'version');
    if (alias) registered.where({ alias });
    const [flagRows, buildingRows, registeredRows] = await Promise.all([flags, building, registered]);
    const exists = new Set(registeredRows.map((r: { alias: string; version: string }) => `${r.alias}\u0000${r.version}`));
    const out = new Map<string, { alias: string; version: string }>();
    const add = (a: string, v: string | null) => {
      if (v && exists.has(`${a}\u0000${v}`)) out.set(`${a}\u0000${v}`, { alias: a, version: v });
    };
    for (const f of flagRows as Array<{ alias: string; active_version: string; previous_version: string | null }>) {
      add(f.alias, f.active_version);
      add(f.alias, f.previous_version);
    }
    for (const b of buildingRows as Array<{ alias: string; version: string }>) add(b.alias, b.version);
    return [...out.values()];
  }

  /**
   * Removes a version from the registry. The active version is refused; deleting the
   * previous one clears it (there is then nothing to roll back to).
   */
  async remove(alias: string, version: string, trx: Knex): Promise<ModelVersionRow> {
    const row = await trx('models').where({ alias, version }).forUpdate().first();
    if (!row) throw appError('MODEL_VERSION_NOT_FOUND', `${alias}@${version} is not registered`);
    const flag = await trx('model_flags').where({ alias }).forUpdate().first();
    if (flag?.active_version === version) {
      throw appError('MODEL_VERSION_ACTIVE', `${alias}@${version} is the active version; switch ${alias} to another version first`, { alias, version });
    }
    if (flag?.previous_version === version) await trx('model_flags').where({ alias }).update({ previous_version: null });
    await trx('model_reindex').where({ alias, version }).delete();
    await trx('models').where({ alias, version }).delete();
    return toVersion(row);
  }

  /** The version rollback would switch to, or a 409 when there is none. */
  async rollbackTarget(alias: string): Promise<string> {
    const flag = await this.getFlag(alias);
    if (!flag) throw appError('MODEL_ALIAS_NOT_FOUND', `no active version for alias ${alias}`);
    if (!flag.previousVersion) throw appError('NOTHING_TO_ROLL_BACK', `${alias} has no previous version`);
    return flag.previousVersion;
  }
}

function sameFiles(a: ModelManifest, b: ModelManifest): boolean {
  const key = (m: ModelManifest) => JSON.stringify([...m.files].sort((x, y) => x.path.localeCompare(y.path)));
  return a.kind === b.kind && key(a) === key(b);
}

function parseJson<T>(value: unknown): T {
  return (typeof value === 'string' ? JSON.parse(value) : value) as T;
}

function toVersion(row: Record<string, unknown>): ModelVersionRow {
  const manifest = parseJson<ModelManifest>(row.manifest);
  return {
    alias: manifest.alias,
    version: (row.version as string) ?? manifest.version,
    kind: row.kind as ModelKind,
    manifest,
    status: row.status as string,
    createdAt: new Date(row.created_at as string),
  };
}

function toFlag(row: Record<string, unknown>): ModelFlag {
  return {
    alias: row.alias as string,
    activeVersion: row.active_version as string,
    previousVersion: (row.previous_version as string | null) ?? null,
    updatedBy: (row.updated_by as string | null) ?? null,
    updatedAt: new Date(row.updated_at as string),
  };
}
