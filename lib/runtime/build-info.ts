import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Config } from '../config/env.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export interface BuildInfo {
  name: string;
  version: string;
  commit: string | null;
  node: string;
  profile: string;
}

let cached: Omit<BuildInfo, 'profile'> | null = null;

/** What /api/version answers. The commit comes from BUILD_COMMIT (set by the image build) or .git. */
export function buildInfo(config: Pick<Config, 'buildCommit' | 'profile'>): BuildInfo {
  cached ??= {
    name: 'ragmesh',
    version: (JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }).version,
    commit: config.buildCommit ?? gitCommit(),
    node: process.version,
  };
  return { ...cached, profile: config.profile };
}

function gitCommit(): string | null {
  try {
    const head = readFileSync(path.join(ROOT, '.git', 'HEAD'), 'utf8').trim();
    if (!head.startsWith('ref: ')) return head;
    const ref = head.slice(5);
    try {
      return readFileSync(path.join(ROOT, '.git', ref), 'utf8').trim();
    } catch {
      const packed = readFileSync(path.join(ROOT, '.git', 'packed-refs'), 'utf8');
      return packed.split('\n').find((line) => line.endsWith(` ${ref}`))?.split(' ')[0] ?? null;
    }
  } catch {
    return null;
  }
}
