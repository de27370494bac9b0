import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const LIB = path.dirname(fileURLToPath(import.meta.url));

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const full = path.join(dir, name);
    if (statSync(full).isDirectory()) return sources(full);
    return name.endsWith('.ts') && !name.endsWith('.test.ts') ? [full] : [];
  });
}

describe('the lib/ boundary', () => {
  it('no file under lib/ imports services/ or a top-level file (boot.ts, main.ts, moleculer.config.ts)', () => {
    const crossings: string[] = [];
    for (const file of sources(LIB)) {
      const text = readFileSync(file, 'utf8');
      for (const match of text.matchAll(/(?:from|import\()\s*'(\.[^']+)'/g)) {
        const target = path.resolve(path.dirname(file), match[1]!);
        if (!target.startsWith(LIB + path.sep)) crossings.push(`${path.relative(LIB, file)} → ${path.relative(path.dirname(LIB), target)}`);
      }
    }
    assert.deepEqual(crossings, []);
  });
});
