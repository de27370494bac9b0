/**
 * bench:extract — ragmesh's PDF extraction (layout, headings, furniture removal,
 * normalization) and chunking against the floor: pdf.js reading the same text layer
 * with nothing done to it, in one run, compared as a ratio.
 *
 *   ratio       = extractDocument time / raw pdf.js getTextContent time, same 100-page PDF   goal ≤ 1.5
 *   chunk_ratio = (extract + chunkDocument) time / raw pdf.js time                          (reported)
 *
 * The PDF has 100 A4 pages of 40 lines each (Latin and Cyrillic, DejaVu Sans embedded).
 * The machine is shared and noisy, so the two sides alternate and each side's times are
 * summed over all rounds: load drift hits both alike.
 */
import { getResolvedPDFJS } from 'unpdf';
import { chunkDocument } from '../lib/chunking/index.ts';
import { extractDocument } from '../lib/extract/index.ts';
import { textPdf } from '../test/fixtures/documents.ts';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const PAGES = 100;

const pdf = await textPdf(
  Array.from({ length: PAGES }, (_, p) =>
    Array.from({ length: 40 }, (_, l) => `Page ${p + 1} line ${l}: the quick brown fox jumps over the lazy dog, и съешь ещё этих мягких булок.`),
  ),
);
const pdfjs = await getResolvedPDFJS();
const noOcr = async () => {
  throw new Error('a text PDF needs no OCR');
};

async function raw(): Promise<number> {
  const task = pdfjs.getDocument({ data: new Uint8Array(pdf), verbosity: 0, disableFontFace: true, useSystemFonts: false });
  const document = await task.promise;
  let chars = 0;
  for (let n = 1; n <= document.numPages; n++) {
    const content = await (await document.getPage(n)).getTextContent();
    for (const item of content.items) if ('str' in item) chars += item.str.length;
  }
  await task.destroy();
  return chars;
}

let rawMs = 0;
let extractMs = 0;
let chunkMs = 0;
let chunks = 0;
await raw(); // warm both paths once: module loading is not what is measured
await extractDocument(pdf, { kind: 'pdf', ocr: noOcr });
for (let round = 0; round < ROUNDS; round++) {
  let t = performance.now();
  await raw();
  rawMs += performance.now() - t;
  t = performance.now();
  const document = await extractDocument(pdf, { kind: 'pdf', ocr: noOcr });
  extractMs += performance.now() - t;
  t = performance.now();
  chunks = chunkDocument(document, { targetTokens: 256, overlapTokens: 32 }).length;
  chunkMs += performance.now() - t;
}

const perRun = (ms: number) => Math.round((ms / ROUNDS) * 10) / 10;
console.log(`node ${process.version}, pdf.js ${pdfjs.version}, ${PAGES} pages, ${pdf.length} bytes, ${ROUNDS} rounds, single thread`);
console.log(`raw pdf.js text layer   ${perRun(rawMs)} ms`);
console.log(`extractDocument         ${perRun(extractMs)} ms  (${Math.round((PAGES / (extractMs / ROUNDS)) * 1000)} pages/s)`);
console.log(`chunkDocument           ${perRun(chunkMs)} ms  (${chunks} chunks of ≤256 tokens)`);
console.log(
  JSON.stringify({
    bench: 'extract',
    ratio: Math.round((extractMs / rawMs) * 100) / 100,
    goal: 1.5,
    lower_is_better: true,
    chunk_ratio: Math.round(((extractMs + chunkMs) / rawMs) * 100) / 100,
    raw_ms: perRun(rawMs),
    extract_ms: perRun(extractMs),
    chunk_ms: perRun(chunkMs),
    pages: PAGES,
    node: process.version,
    pdfjs: pdfjs.version,
  }),
);
