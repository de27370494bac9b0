import { createRequire } from 'node:module';
import path from 'node:path';
import type { Logger } from 'pino';
import Tesseract from 'tesseract.js';
import { appError, overloaded } from '../errors.ts';
import { modelMetrics, type ModelLoader } from './loader.ts';
import type { ModelManifest } from './manifest.ts';
import { repairMixedWords, scriptCensus, type Script } from './ocr-script.ts';

/** The traineddata of each script, for pages written in one script only. */
const LANGUAGE_OF_SCRIPT: Record<Script, string> = { latin: 'eng', cyrillic: 'rus' };

export interface OcrResult {
  text: string;
  /** Tesseract's mean word confidence, 0–100. */
  confidence: number;
  version: string;
}

export interface OcrPoolOptions {
  workers: number;
  queueLimit: number;
  /** Subset of the model's languages to recognize together; default all of them. */
  languages?: string[];
}

const require = createRequire(import.meta.url);
// In Node tesseract.js loads its core with require(); corePath is set anyway so no
// code path can fall back to a CDN address.
const CORE_PATH = path.dirname(require.resolve('tesseract.js-core/package.json'));

/**
 * A pool of tesseract.js workers over one verified ocr model version. Traineddata are
 * read from the verified local folder (`langPath`, plain files, `gzip: false`) and
 * never cached elsewhere (`cacheMethod: 'none'`), so nothing is fetched or written
 * outside the model cache.
 */
export class OcrPool {
  private pending = 0;
  /** One-language workers, opened on first need (a page written in one script). */
  private readonly single = new Map<string, Promise<Tesseract.Scheduler>>();

  private constructor(
    readonly manifest: ModelManifest,
    private readonly scheduler: Tesseract.Scheduler,
    private readonly queueLimit: number,
    private readonly languages: string[],
    private readonly folder: string,
    private readonly workers: number,
  ) {}

  static async open(folder: string, manifest: ModelManifest, options: OcrPoolOptions): Promise<OcrPool> {
    const available = manifest.ocr?.languages ?? [];
    const languages = options.languages?.length ? options.languages : available;
    const missing = languages.filter((l) => !available.includes(l));
    if (missing.length > 0) throw appError('OCR_LANGUAGE_MISSING', `ocr model ${manifest.alias}@${manifest.version} has no ${missing.join(', ')} traineddata`);
    const scheduler = Tesseract.createScheduler();
    try {
      const workers = await Promise.all(
        Array.from({ length: Math.max(1, options.workers) }, () =>
          Tesseract.createWorker(languages, Tesseract.OEM.LSTM_ONLY, {
            langPath: folder,
            corePath: CORE_PATH,
            cacheMethod: 'none',
            gzip: false,
            // Without a handler tesseract.js rethrows a failed job (e.g. an unreadable
            // image) as an uncaught exception, which would kill the process; the job's
            // promise is rejected either way.
            errorHandler: () => undefined,
          }),
        ),
      );
      for (const worker of workers) scheduler.addWorker(worker);
    } catch (err) {
      await scheduler.terminate();
      throw err;
    }
    return new OcrPool(manifest, scheduler, options.queueLimit, languages, folder, Math.max(1, options.workers));
  }

  private singleLanguage(language: string): Promise<Tesseract.Scheduler> {
    let scheduler = this.single.get(language);
    if (!scheduler) {
      scheduler = (async () => {
        const s = Tesseract.createScheduler();
        const workers = await Promise.all(
          Array.from({ length: this.workers }, () =>
            Tesseract.createWorker(language, Tesseract.OEM.LSTM_ONLY, { langPath: this.folder, corePath: CORE_PATH, cacheMethod: 'none', gzip: false, errorHandler: () => undefined }),
          ),
        );
        for (const w of workers) s.addWorker(w);
        return s;
      })();
      scheduler.catch(() => this.single.delete(language));
      this.single.set(language, scheduler);
    }
    return scheduler;
  }

  get depth(): number {
    return this.pending;
  }

  async recognize(image: Buffer): Promise<OcrResult> {
    if (this.pending >= this.queueLimit) throw overloaded(`OCR is overloaded: ${this.pending} images queued (limit ${this.queueLimit})`, 2);
    this.pending++;
    try {
      const { data } = await this.scheduler.addJob('recognize', image);
      let text = data.text.trim();
      let confidence = data.confidence;
      // A page in one script, yet with words of the other: recognised again with that
      // script's language alone, kept unless tesseract is clearly less sure of it.
      const census = scriptCensus(text);
      const language = census.dominant && LANGUAGE_OF_SCRIPT[census.dominant];
      const stray = census.dominant === 'latin' ? census.cyrillic : census.latin;
      if (language && this.languages.length > 1 && this.languages.includes(language) && stray + census.mixed > 0) {
        const again = (await (await this.singleLanguage(language)).addJob('recognize', image)).data;
        if (again.confidence >= confidence - 5) {
          text = again.text.trim();
          confidence = again.confidence;
        }
      }
      return { text: repairMixedWords(text, census.dominant), confidence, version: this.manifest.version };
    } catch (err) {
      throw appError('OCR_FAILED', `image could not be recognized: ${String((err as Error)?.message ?? err)}`);
    } finally {
      this.pending--;
    }
  }

  async close(): Promise<void> {
    await this.scheduler.terminate();
    for (const single of this.single.values()) await (await single.catch(() => null))?.terminate();
  }
}

type Log = Pick<Logger, 'info' | 'warn' | 'error'>;

/** The ocr model version a process serves; switching warms the new pool first. */
export class OcrRuntime {
  private current: OcrPool | null = null;
  private opening: Promise<OcrPool> | null = null;

  constructor(
    private readonly loader: Pick<ModelLoader, 'materialize'>,
    private readonly options: OcrPoolOptions,
    private readonly logger?: Log,
  ) {}

  get version(): string | null {
    return this.current?.manifest.version ?? null;
  }

  async activate(manifest: ModelManifest): Promise<void> {
    if (this.current?.manifest.version === manifest.version && this.current.manifest.alias === manifest.alias) return;
    const started = performance.now();
    let pool: OcrPool;
    try {
      pool = await OcrPool.open(await this.loader.materialize(manifest), manifest, this.options);
    } catch (err) {
      modelMetrics.model_load_failures_total++;
      throw err;
    }
    modelMetrics.model_loads_total++;
    this.logger?.info({ model: `${manifest.alias}@${manifest.version}`, ms: Math.round(performance.now() - started) }, 'ocr model loaded');
    const previous = this.current;
    this.current = pool;
    if (previous) void this.retire(previous);
  }

  /** Opens `manifest` once, shared by concurrent first callers. */
  ensure(load: () => Promise<ModelManifest | null>): Promise<OcrPool> {
    if (this.current) return Promise.resolve(this.current);
    this.opening ??= (async () => {
      const manifest = await load();
      if (!manifest) throw appError('OCR_MODEL_MISSING', 'no ocr model version is active; publish one and switch to it');
      await this.activate(manifest);
      return this.current!;
    })().finally(() => {
      this.opening = null;
    });
    return this.opening;
  }

  private async retire(pool: OcrPool): Promise<void> {
    const deadline = Date.now() + 120_000;
    while (pool.depth > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
    await pool.close().catch((err: unknown) => this.logger?.warn({ err }, 'closing replaced ocr pool failed'));
  }

  async close(): Promise<void> {
    const pool = this.current;
    this.current = null;
    await pool?.close();
  }
}
