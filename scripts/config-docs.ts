import { readFile, writeFile } from 'node:fs/promises';
import { renderConfigTable } from '../lib/config/env.ts';

/** Rewrites the table between the markers in docs/config.md from lib/config/env.ts. */
export const BEGIN = '<!-- config-table:begin -->';
export const END = '<!-- config-table:end -->';

export function withTable(doc: string): string {
  const start = doc.indexOf(BEGIN);
  const end = doc.indexOf(END);
  if (start < 0 || end < start) throw new Error(`docs/config.md lacks the ${BEGIN} … ${END} markers`);
  return `${doc.slice(0, start + BEGIN.length)}\n${renderConfigTable()}\n${doc.slice(end)}`;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const file = new URL('../docs/config.md', import.meta.url);
  await writeFile(file, withTable(await readFile(file, 'utf8')));
  process.stdout.write('docs/config.md updated\n');
}
