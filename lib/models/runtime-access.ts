import type { ModelsRepository } from '../repositories/models.ts';
import type { Runtime } from '../runtime/service-kit.ts';
import { ModelLoader } from './loader.ts';

/**
 * Event broadcast after an alias's active version changed. Every process that serves
 * models loads the new version (keeping the old one serving until it is ready).
 */
export const MODELS_SWITCHED_EVENT = 'models.switched';

export interface ModelsSwitchedPayload {
  alias: string;
  kind: string;
  version: string;
  previous: string | null;
}

/** Broadcast after a version was deleted: processes close it if they had it open. */
export const MODELS_DELETED_EVENT = 'models.deleted';

export interface ModelsDeletedPayload {
  alias: string;
  kind: string;
  version: string;
}

export async function modelsRepository(runtime: Pick<Runtime, 'stores'>): Promise<ModelsRepository> {
  return (await runtime.stores.repos()).models;
}

export async function modelLoader(runtime: Pick<Runtime, 'stores' | 'config' | 'logger'>): Promise<ModelLoader> {
  return new ModelLoader(await runtime.stores.models(), runtime.config.models.cacheDir, runtime.logger);
}
