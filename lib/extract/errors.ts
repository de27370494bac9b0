import { appError, RagmeshError } from '../errors.ts';

/** The file is of a supported type but its content cannot be read: the client's to fix, never retried. */
export function unreadable(reason: string): RagmeshError {
  return appError('UNREADABLE_FILE', `The file cannot be read: ${reason}`);
}

export function tooManyPages(pages: number, limit: number): RagmeshError {
  return appError('TOO_MANY_PAGES', `The document has ${pages} pages; at most ${limit} are accepted`, { pages, limit });
}

/** Throws the signal's reason when it is aborted: the caller's cancel, not an error of the file. */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw signal.reason;
}

/**
 * Settles with `work`, or rejects with the abort reason as soon as the signal fires:
 * a long OCR call cannot be interrupted, but the extraction need not wait for it.
 */
export function abortable<T>(work: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return work;
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}
