/**
 * Renders the generated parts of docs/api.md (`npm run docs:api`): the error catalogue
 * of lib/errors.ts between its markers. lib/errors.test.ts fails when they drift.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { renderErrorCatalogue } from '../lib/errors.ts';

const path = new URL('../docs/api.md', import.meta.url);
const doc = await readFile(path, 'utf8');
const START = '<!-- error-catalogue:start -->';
const END = '<!-- error-catalogue:end -->';
const start = doc.indexOf(START);
const end = doc.indexOf(END);
if (start < 0 || end < start) throw new Error(`docs/api.md needs the markers ${START} … ${END}`);
await writeFile(path, `${doc.slice(0, start)}${START}\n${renderErrorCatalogue()}\n${doc.slice(end)}`);
console.log('docs/api.md: error catalogue rendered');
