import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Errors } from 'moleculer';
import { appError, overloaded } from '../../lib/errors.ts';
import { errorBody } from './error-body.ts';

describe('errorBody', () => {
  it('maps OVERLOADED to a retryable 503 with Retry-After', () => {
    const res = errorBody(overloaded('emb is busy', 3), 'rid-1');
    assert.equal(res.status, 503);
    assert.equal(res.retryAfterSeconds, 3);
    assert.deepEqual(res.body.error, { code: 'OVERLOADED', message: 'emb is busy', status: 503, retryable: true, request_id: 'rid-1', details: undefined });
  });

  it('keeps the stable code of a RagmeshError that crossed the transporter as a plain MoleculerError', () => {
    const original = appError('INVALID_OBJECT_KEY', 'bad key');
    // What Moleculer rebuilds on the caller's side: the name survives, the class does not.
    const remote = Object.assign(new Errors.MoleculerError(original.message, original.code, original.type), { name: 'RagmeshError' });
    const res = errorBody(remote);
    assert.equal(res.status, 400);
    assert.equal(res.body.error.code, 'INVALID_OBJECT_KEY');
  });

  it('gives validation failures 422 with the details, and hides internal errors', () => {
    const validation = errorBody(new Errors.ValidationError('Parameters validation error!', 'VALIDATION_ERROR', [{ field: 'texts', type: 'required' }]));
    assert.equal(validation.status, 422);
    assert.equal(validation.body.error.code, 'VALIDATION_FAILED');
    assert.deepEqual(validation.body.error.details, [{ field: 'texts', type: 'required' }]);

    const internal = errorBody(new Error('connect ECONNREFUSED 10.0.0.7:5432'));
    assert.equal(internal.status, 500);
    assert.equal(internal.body.error.code, 'INTERNAL');
    assert.doesNotMatch(internal.body.error.message, /10\.0\.0\.7/);
  });

  it('answers a missing service with a retryable 503', () => {
    const res = errorBody(new Errors.ServiceNotFoundError({ action: 'emb.embed' }));
    assert.equal(res.status, 503);
    assert.equal(res.body.error.code, 'SERVICE_UNAVAILABLE');
    assert.equal(res.body.error.retryable, true);
  });
});

describe('errorBody of errors that are not ours', () => {
  it('gives a body that is too large its own code, PAYLOAD_TOO_LARGE (413), not BAD_REQUEST', () => {
    // What body-parser hands moleculer-web for an oversized JSON body.
    const tooLarge = Object.assign(new Error('request entity too large'), { status: 413, statusCode: 413, type: 'entity.too.large' });
    const res = errorBody(tooLarge);
    assert.equal(res.status, 413);
    assert.equal(res.body.error.code, 'PAYLOAD_TOO_LARGE');
    assert.equal(res.body.error.retryable, false);
  });

  it('takes status and retryable from the catalogue, whatever the error claims', () => {
    const remote = Object.assign(new Errors.MoleculerError('emb is still starting', 404, 'EMB_STARTING'), { name: 'RagmeshError', retryable: false });
    const res = errorBody(remote);
    assert.equal(res.status, 503);
    assert.equal(res.body.error.retryable, true);
  });
});
