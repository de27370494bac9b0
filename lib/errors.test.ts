import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { Errors } from 'moleculer';
import { appError, classify, ERROR_CATALOGUE, isRetryable, renderErrorCatalogue, RagmeshError } from './errors.ts';

describe('error catalogue', () => {
  it('gives every code a 4xx/5xx status and a summary, and codes are UPPER_SNAKE', () => {
    for (const [code, spec] of Object.entries(ERROR_CATALOGUE)) {
      assert.match(code, /^[A-Z][A-Z0-9_]+$/);
      assert.ok(spec.status >= 400 && spec.status < 600, code);
      assert.ok(spec.summary.length > 5, code);
    }
  });

  it('makes errors whose status and retryable come from the catalogue', () => {
    const e = appError('TOO_MANY_STREAMS', 'x', { retryAfterSeconds: 2 });
    assert.ok(e instanceof RagmeshError);
    assert.equal(e.code, 429);
    assert.equal(e.type, 'TOO_MANY_STREAMS');
    assert.equal(e.retryable, true);
    assert.equal(appError('UNREADABLE_FILE', 'x').retryable, false);
  });

  it('decides retries where the error arises: emb starting and a switched model version are transient, a bad file is not', () => {
    assert.equal(isRetryable(appError('EMB_STARTING', 'starting')), true);
    assert.equal(isRetryable(appError('MODEL_NOT_LOADED', 'not yet')), true);
    assert.equal(isRetryable(appError('MODEL_VERSION_MISMATCH', 'switched')), true);
    assert.equal(isRetryable(appError('NO_TEXT', 'empty')), false);
    assert.equal(isRetryable(appError('OCR_FAILED', 'noise')), false);
    // Moleculer's own: a timeout may pass, a validation failure will not.
    assert.equal(isRetryable(new Errors.RequestTimeoutError({ action: 'emb.embed', nodeID: 'node-1' })), true);
    assert.equal(isRetryable(new Errors.ValidationError('bad', 'VALIDATION_ERROR', [])), false);
    // Anything unknown (a dropped connection) may pass later.
    assert.equal(isRetryable(new Error('ECONNRESET')), true);
  });

  it('classifies a remote RagmeshError by its code even though the class is lost', () => {
    const remote = Object.assign(new Errors.MoleculerError('gone', 409, 'DOCUMENT_DELETED'), { name: 'RagmeshError' });
    assert.deepEqual(classify(remote), { code: 'DOCUMENT_DELETED', status: 409, retryable: false, known: true, outage: false });
    // A dependency out of reach, even from another node, still says so: jobs wait it out.
    const remoteOutage = Object.assign(new Errors.MoleculerError('pg down', 503, 'DATABASE_UNAVAILABLE'), { name: 'RagmeshError' });
    assert.equal(classify(remoteOutage).outage, true);
    assert.deepEqual(classify(new Errors.BrokerDisconnectedError('The broker is disconnected')), { code: 'BROKER_UNAVAILABLE', status: 503, retryable: true, known: true, outage: true });
    assert.equal(classify(new Error('boom')).code, 'INTERNAL');
    assert.equal(classify(new Error('boom')).known, false);
  });

  it('is rendered into docs/api.md, in step (regenerate with npm run docs:api)', async () => {
    const doc = await readFile(new URL('../docs/api.md', import.meta.url), 'utf8');
    const start = doc.indexOf('<!-- error-catalogue:start -->');
    const end = doc.indexOf('<!-- error-catalogue:end -->');
    assert.ok(start >= 0 && end > start, 'docs/api.md has the error-catalogue markers');
    assert.equal(doc.slice(start, end).split('\n').slice(1).join('\n').trim(), renderErrorCatalogue());
  });
});
