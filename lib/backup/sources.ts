import type { Logger } from 'pino';
import { buildInfo } from '../runtime/build-info.ts';
import type { Stores } from '../runtime/stores.ts';
import type { BackupSources, RestoreTarget } from './backup.ts';
import { QdrantSnapshots } from './qdrant.ts';

/** Everything a backup reads, from one process's stores (the maintenance service's, or a CLI's). */
export async function backupSources(stores: Stores, logger: Logger): Promise<BackupSources> {
  const { config } = stores;
  const info = buildInfo(config);
  return {
    config,
    db: await stores.db(),
    buckets: { objects: await stores.objects(), models: await stores.models() },
    target: await stores.backups(),
    qdrant: qdrantOf(stores),
    app: { version: info.version, commit: info.commit },
    logger,
  };
}

/** Where a restore writes: the buckets of `stores` (the database is opened by the restore itself, after it is filled). */
export async function restoreTarget(stores: Stores, logger: Logger): Promise<RestoreTarget> {
  return { config: stores.config, buckets: { objects: await stores.objects(), models: await stores.models() }, qdrant: qdrantOf(stores), logger };
}

function qdrantOf(stores: Stores): QdrantSnapshots | null {
  const { vectors } = stores.config;
  return vectors.driver === 'qdrant' ? new QdrantSnapshots(vectors.qdrantUrl!, vectors.qdrantApiKey) : null;
}
