import type { ExtractedDocument } from '../extract/types.ts';
import { extractEntities, type Entities } from './entities.ts';

/** The analyze job's artifact: stored as analysis.json and analysis.md beside the document. */
export interface Analysis {
  documentId: string;
  /** The document version analysed; a newer version's analysis replaces it. */
  version: number;
  title: string | null;
  language: string;
  summary: { method: 'extractive' | 'llm'; text: string };
  outline: Array<{ level: number; text: string; page: number | null }>;
  keyTerms: Array<{ term: string; score: number }>;
  entities: Entities;
  counts: { pages: number; words: number; tables: number };
  /** Share of pages whose text came from OCR (0–1). */
  ocrShare: number;
  createdAt: string;
}

const WORD_RE = /[\p{L}\p{N}][\p{L}\p{N}'’-]*/gu;

export function words(text: string): string[] {
  return text.match(WORD_RE) ?? [];
}

export function detectLanguage(text: string): string {
  const sample = text.slice(0, 20_000);
  const cyr = (sample.match(/\p{Script=Cyrillic}/gu) ?? []).length;
  const lat = (sample.match(/\p{Script=Latin}/gu) ?? []).length;
  if (cyr + lat === 0) return 'unknown';
  return cyr > lat ? 'ru' : 'en';
}

/** Headings of every page, in reading order, each with the page it is on. */
export function outlineOf(doc: ExtractedDocument): Analysis['outline'] {
  return doc.pages.flatMap((p) => p.headings.map((h) => ({ level: h.level, text: h.text.trim(), page: p.page }))).filter((h) => h.text.length > 0);
}

/**
 * Tables as the extractors leave them in text: runs of at least two lines that each
 * have three or more cells split by `|`, tabs or wide gaps.
 */
export function countTables(text: string): number {
  let tables = 0;
  let run = 0;
  for (const line of text.split('\n')) {
    const cells = line.includes('|') ? line.split('|').filter((c) => c.trim()).length : line.split(/\t| {3,}/).filter((c) => c.trim()).length;
    if (cells >= 3) run++;
    else {
      if (run >= 2) tables++;
      run = 0;
    }
  }
  return tables + (run >= 2 ? 1 : 0);
}

const SENTENCE_RE = /[^.!?…\n]+(?:[.!?…]+|$)/gu;

/**
 * An extractive summary: the sentences whose words are most frequent in the document
 * (stop words are discounted by their own frequency across sentences), in their
 * original order, up to `maxChars`.
 */
export function extractiveSummary(text: string, maxSentences = 3, maxChars = 600): string {
  const sentences = (text.match(SENTENCE_RE) ?? []).map((s) => s.trim()).filter((s) => words(s).length >= 4);
  if (sentences.length === 0) return text.slice(0, maxChars).trim();
  const tf = new Map<string, number>();
  const sf = new Map<string, number>();
  for (const s of sentences) {
    const ws = words(s.toLowerCase());
    for (const w of ws) tf.set(w, (tf.get(w) ?? 0) + 1);
    for (const w of new Set(ws)) sf.set(w, (sf.get(w) ?? 0) + 1);
  }
  const n = sentences.length;
  const scored = sentences.map((s, i) => {
    const ws = words(s.toLowerCase()).filter((w) => w.length > 2);
    const score = ws.reduce((sum, w) => sum + Math.log(1 + tf.get(w)!) * Math.log((n + 1) / sf.get(w)!), 0) / Math.max(4, Math.sqrt(ws.length) * 2);
    return { s, i, score };
  });
  const picked: typeof scored = [];
  let length = 0;
  for (const c of [...scored].sort((a, b) => b.score - a.score)) {
    if (picked.length >= maxSentences) break;
    if (length + c.s.length > maxChars && picked.length > 0) continue;
    picked.push(c);
    length += c.s.length;
  }
  return picked.sort((a, b) => a.i - b.i).map((c) => c.s).join(' ');
}

export interface TermStats {
  /** Lexemes of the document with their counts (PostgreSQL's stemmer, as the lexical search uses). */
  lexemes: Array<{ term: string; tf: number }>;
  /** How many of the tenant's chunks hold each lexeme, and how many chunks there are. */
  df: Map<string, number>;
  corpusSize: number;
}

/** Key terms by tf-idf: frequent here, rare in the tenant's other documents; shown as the commonest surface word of each stem. */
export function keyTerms(text: string, stats: TermStats, limit = 12): Analysis['keyTerms'] {
  const surface = new Map<string, Map<string, number>>();
  for (const w of words(text)) {
    const lower = w.toLowerCase();
    if (lower.length < 3 || /^\d+$/.test(lower)) continue;
    let forms = surface.get(lower);
    if (!forms) surface.set(lower, (forms = new Map()));
    forms.set(w, (forms.get(w) ?? 0) + 1);
  }
  // Stems may end in a letter the word does not have (every → everi): match the longest prefix that some word shares.
  const surfaceOf = (stem: string): string => {
    for (let length = stem.length; length >= Math.min(stem.length, 3); length--) {
      const prefix = stem.slice(0, length);
      let best: [string, number] | null = null;
      for (const [lower, forms] of surface) {
        if (!lower.startsWith(prefix)) continue;
        const count = [...forms.values()].reduce((a, b) => a + b, 0);
        if (!best || count > best[1] || (count === best[1] && lower.length < best[0].length)) best = [lower, count];
      }
      if (best) return best[0];
    }
    return stem;
  };
  return stats.lexemes
    .filter((l) => l.term.length >= 3 && !/^\d+$/.test(l.term))
    .map((l) => ({ term: l.term, score: (1 + Math.log(l.tf)) * Math.log((stats.corpusSize + 1) / ((stats.df.get(l.term) ?? 0) + 1) + 1) }))
    .sort((a, b) => b.score - a.score || a.term.localeCompare(b.term))
    .slice(0, limit)
    .map((k) => ({ term: surfaceOf(k.term), score: Math.round(k.score * 1000) / 1000 }));
}

export function fullText(doc: ExtractedDocument): string {
  return doc.pages.map((p) => p.text).join('\n\n');
}

export function buildAnalysis(input: {
  documentId: string;
  version: number;
  extracted: ExtractedDocument;
  terms: TermStats;
  summary?: { method: 'llm'; text: string } | null;
  now?: Date;
}): Analysis {
  const { extracted } = input;
  const text = fullText(extracted);
  const pageCount = extracted.pages.length;
  return {
    documentId: input.documentId,
    version: input.version,
    title: extracted.title,
    language: detectLanguage(text),
    summary: input.summary ?? { method: 'extractive', text: extractiveSummary(text) },
    outline: outlineOf(extracted),
    keyTerms: keyTerms(text, input.terms),
    entities: extractEntities(text),
    counts: { pages: pageCount, words: words(text).length, tables: countTables(text) },
    ocrShare: pageCount ? Math.round((extracted.ocrPages.length / pageCount) * 1000) / 1000 : 0,
    createdAt: (input.now ?? new Date()).toISOString(),
  };
}

const ENTITY_TITLES: Record<keyof Entities, string> = { people: 'People', organisations: 'Organisations', places: 'Places', dates: 'Dates', amounts: 'Amounts' };

export function analysisMarkdown(a: Analysis): string {
  const lines = [`# ${a.title ?? 'Document'} — analysis`, '', `Version ${a.version} · language ${a.language} · ${a.counts.pages} pages · ${a.counts.words} words · ${a.counts.tables} tables · OCR ${Math.round(a.ocrShare * 100)}%`, ''];
  lines.push('## Summary', '', a.summary.text, '');
  lines.push('## Outline', '');
  for (const o of a.outline) lines.push(`${'  '.repeat(Math.max(0, o.level - 1))}- ${o.text}${o.page !== null ? ` (p. ${o.page})` : ''}`);
  if (!a.outline.length) lines.push('_No headings._');
  lines.push('', '## Key terms', '', a.keyTerms.map((k) => k.term).join(', ') || '_None._', '', '## Named entities', '');
  for (const [kind, list] of Object.entries(a.entities) as Array<[keyof Entities, Entities[keyof Entities]]>) {
    if (list.length) lines.push(`- **${ENTITY_TITLES[kind]}**: ${list.map((e) => e.text).join('; ')}`);
  }
  return `${lines.join('\n')}\n`;
}

/** Where a document's analysis lives: beside its versions, so deleting the document removes it. */
export function analysisKeys(tenantId: string, documentId: string) {
  const base = `tenants/${tenantId}/documents/${documentId}`;
  return { json: `${base}/analysis.json`, markdown: `${base}/analysis.md` };
}
