import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { buildWeb } from '../../scripts/build-web.ts';

describe('web UI build output', () => {
  it('web/dist is what web/src builds to (run npm run build:web after changing web/src)', async () => {
    const built = await buildWeb();
    for (const [name, text] of Object.entries(built)) {
      const committed = await readFile(new URL(`../../web/dist/${name}`, import.meta.url), 'utf8').catch(() => '');
      assert.ok(committed === text, `web/dist/${name} is stale: run npm run build:web`);
    }
  });

  it('references nothing outside its own origin', async () => {
    const built = await buildWeb();
    for (const [name, text] of Object.entries(built)) {
      assert.doesNotMatch(text, /(src|href)=["']?(https?:)?\/\//, `${name} loads something from another origin`);
      assert.doesNotMatch(text, /@import\s+url\(|fonts\.googleapis|cdn\./i, `${name} pulls an outside stylesheet or font`);
    }
    const compressed = Object.values(built).reduce((n, t) => n + gzipSync(t, { level: 9 }).length, 0);
    assert.ok(compressed < 300 * 1024, `${compressed} bytes compressed`);
  });
});
