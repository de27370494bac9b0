import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { applyMolEnvOverrides } from './mol-env.ts';

describe('MOL_* overrides', () => {
  it('overrides top-level and nested broker options by the moleculer-runner convention', () => {
    const options = { namespace: 'ragmesh', requestTimeout: 30000, registry: { strategy: 'RoundRobin', preferLocal: true } };
    applyMolEnvOverrides(options, {
      MOL_NAMESPACE: 'staging',
      MOL_REQUEST_TIMEOUT: '5000',
      MOL_REGISTRY__PREFER_LOCAL: 'false',
      MOL_UNKNOWN_OPTION: 'ignored',
      OTHER: 'x',
    });
    assert.deepEqual(options, { namespace: 'staging', requestTimeout: 5000, registry: { strategy: 'RoundRobin', preferLocal: false } });
  });
});
