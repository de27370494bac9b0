import type { ServiceSchema } from 'moleculer';
import { appError } from '../../lib/errors.ts';
import { OcrRuntime, type OcrResult } from '../../lib/models/ocr-pool.ts';
import { DEFAULT_OCR_ALIAS, ensureSystemOcrModel } from '../../lib/models/publish.ts';
import { MODELS_SWITCHED_EVENT, modelLoader, modelsRepository, type ModelsSwitchedPayload } from '../../lib/models/runtime-access.ts';
import type { RagmeshContext, Runtime } from '../../lib/runtime/service-kit.ts';

export interface OcrParams {
  /** PNG/JPEG/TIFF/BMP bytes, or the same base64-encoded (over JSON transporters). */
  image: Buffer | string;
}

/** Rendered PDF pages are a few MB; anything far past that is not a page. */
const MAX_IMAGE_BYTES = 40 * 1024 * 1024;

const runtimes = new WeakMap<Runtime, OcrRuntime>();

/** One OCR pool per process (per Runtime), opened on first use. */
function ocrRuntime(runtime: Runtime): OcrRuntime {
  let ocr = runtimes.get(runtime);
  if (!ocr) {
    const cfg = runtime.config.models;
    ocr = new OcrRuntime(
      // The models bucket opens lazily, so the loader is made per use.
      { materialize: async (manifest) => (await modelLoader(runtime)).materialize(manifest) },
      { workers: cfg.ocrWorkers, queueLimit: cfg.ocrQueueLimit, languages: cfg.ocrLanguages },
      runtime.logger,
    );
    runtimes.set(runtime, ocr);
  }
  return ocr;
}

/** The active ocr version, publishing Debian's traineddata as the first version if none is. */
async function activeOcrManifest(runtime: Runtime) {
  const repo = await modelsRepository(runtime);
  let active = await repo.getActive(DEFAULT_OCR_ALIAS);
  if (!active) {
    const cfg = runtime.config.models;
    await ensureSystemOcrModel(await runtime.stores.models(), repo, cfg.tessdataDir, cfg.ocrLanguages).catch((err: unknown) =>
      runtime.logger.warn({ err, tessdataDir: cfg.tessdataDir }, 'no ocr model and none could be published from TESSDATA_DIR'),
    );
    active = await repo.getActive(DEFAULT_OCR_ALIAS);
  }
  return active?.model.manifest ?? null;
}

/**
 * `ocr`: image → { text, confidence } with the active ocr model version (traineddata
 * verified like any model). `ocrWarm`: the warm-up half of a switch. Wired into the
 * ingest service by the lead: `actions: { ...ocrActions(runtime) }`, `events: { ...ocrEvents(runtime) }`.
 */
export function ocrActions(runtime: Runtime): NonNullable<ServiceSchema['actions']> {
  return {
    ocr: {
      params: { image: { type: 'any' } },
      async handler(ctx: RagmeshContext<OcrParams>): Promise<OcrResult> {
        const image = toImageBuffer(ctx.params.image);
        const pool = await ocrRuntime(runtime).ensure(() => activeOcrManifest(runtime));
        return pool.recognize(image);
      },
    },
    ocrWarm: {
      params: { alias: 'string', version: 'string' },
      async handler(ctx: RagmeshContext<{ alias: string; version: string }>): Promise<{ alias: string; version: string }> {
        const repo = await modelsRepository(runtime);
        const row = await repo.get(ctx.params.alias, ctx.params.version);
        if (!row || row.kind !== 'ocr') throw appError('MODEL_VERSION_NOT_FOUND', `${ctx.params.alias}@${ctx.params.version} is not a registered ocr model`);
        // Verifies every traineddata file and starts the workers; the swap happens on
        // the models.switched event after the flag changed.
        await (await modelLoader(runtime)).materialize(row.manifest);
        return { alias: row.alias, version: row.version };
      },
    },
  };
}

export function ocrEvents(runtime: Runtime): NonNullable<ServiceSchema['events']> {
  return {
    [MODELS_SWITCHED_EVENT]: {
      async handler(ctx: RagmeshContext<ModelsSwitchedPayload>): Promise<void> {
        const { alias, kind, version } = ctx.params;
        if (kind !== 'ocr' || alias !== DEFAULT_OCR_ALIAS) return;
        const repo = await modelsRepository(runtime);
        const row = await repo.get(alias, version);
        if (!row) return;
        await ocrRuntime(runtime)
          .activate(row.manifest)
          .catch((err: unknown) => runtime.logger.error({ err, alias, version }, 'switch to new ocr model failed; previous version keeps serving'));
      },
    },
  };
}

/** Stops the OCR workers of this process (call from the ingest service's stopped()). */
export async function closeOcr(runtime: Runtime): Promise<void> {
  await runtimes.get(runtime)?.close();
  runtimes.delete(runtime);
}

function toImageBuffer(image: unknown): Buffer {
  let buffer: Buffer;
  if (Buffer.isBuffer(image)) buffer = image;
  else if (typeof image === 'string') buffer = Buffer.from(image.replace(/^data:[^;]+;base64,/, ''), 'base64');
  // A Buffer that crossed a JSON transporter arrives as { type: 'Buffer', data: [...] }.
  else if (image && typeof image === 'object' && (image as { type?: string }).type === 'Buffer') buffer = Buffer.from((image as { data: number[] }).data);
  else throw appError('INVALID_IMAGE', 'image must be bytes or a base64 string');
  if (buffer.length === 0) throw appError('INVALID_IMAGE', 'image is empty');
  if (buffer.length > MAX_IMAGE_BYTES) throw appError('IMAGE_TOO_LARGE', `image is larger than ${MAX_IMAGE_BYTES} bytes`);
  return buffer;
}
