import { api, ApiError, optional, type DocumentView, type Job } from '../api.ts';
import { append, clear, h } from '../dom.ts';
import { formatDate, t } from '../i18n.ts';
import { canWrite, type PageContext } from '../main.ts';
import { follow, statusBadge } from './documents.ts';

interface Chunk {
  id: string;
  ord: number;
  page: number | null;
  heading: string | null;
  lang: string;
  text: string;
}

export interface Analysis {
  documentId: string;
  version: number;
  language: string;
  summary: { method: string; text: string };
  outline: Array<{ level: number; text: string; page: number | null }>;
  keyTerms: Array<{ term: string; score: number }>;
  entities: Record<string, Array<{ text: string; count: number }>>;
  counts: { pages: number; words: number; tables: number; chunks: number };
  ocrShare: number;
  createdAt: string;
}

function analysisView(a: Analysis, documentId: string): HTMLElement {
  return h(
    'div',
    { class: 'analysis', 'data-version': a.version },
    h('h3', null, t('summary')),
    h('p', null, a.summary.text),
    h('h3', null, t('outline')),
    a.outline.length ? null : h('p', { class: 'muted' }, '—'),
    h('ol', { class: 'outline' }, a.outline.map((o) => h('li', { style: `margin-inline-start:${(o.level - 1) * 1}rem`, 'data-page': o.page ?? '' }, o.text, o.page ? h('span', { class: 'muted' }, ` · ${t('page')} ${o.page}`) : ''))),
    h('h3', null, t('keyTerms')),
    h('p', null, a.keyTerms.map((k) => h('span', { class: 'tag' }, k.term))),
    h('h3', null, t('entities')),
    Object.values(a.entities).some((v) => v.length) ? null : h('p', { class: 'muted' }, '—'),
    h('dl', { class: 'entities' }, Object.entries(a.entities).filter(([, v]) => v.length).flatMap(([kind, list]) => [h('dt', null, kind), h('dd', null, list.map((e) => e.text).join('; '))])),
    h('h3', null, t('counts')),
    h('p', null, `${a.language} · ${a.counts.pages} ${t('pages').toLowerCase()} · ${a.counts.words} ${t('words')} · ${a.counts.tables} ${t('tables')} · ${t('ocrShare')} ${Math.round(a.ocrShare * 100)}%`),
    h('p', null, h('a', { href: '#', onclick: async (e: Event) => {
      e.preventDefault();
      const md = await fetch(`/api/v1/documents/${documentId}/analysis?format=markdown`, { headers: { Authorization: `Bearer ${sessionStorage.getItem('ragmesh.token')}` } }).then((r) => r.text());
      const w = h('pre', { class: 'markdown' }, md);
      (e.target as HTMLElement).replaceWith(w);
    } }, t('markdown'))),
  );
}

export async function documentPage(ctx: PageContext): Promise<void> {
  const { root, signal, me } = ctx;
  const id = ctx.params[0] ?? '';
  let doc: DocumentView & { job: Job | null };
  try {
    doc = await api('GET', `documents/${id}`);
  } catch (err) {
    root.append(h('p', { role: 'alert' }, err instanceof ApiError && err.status === 404 ? t('notFound') : String(err)));
    return;
  }
  const ingestJob = doc.job && (doc.job.type ?? 'ingest') === 'ingest' ? doc.job : null;
  const status = h('div', { id: 'doc-status' }, statusBadge(ingestJob?.status ?? doc.status, ingestJob?.progress, ingestJob?.step));
  const analysisStatus = h('span', { id: 'analysis-status', 'aria-live': 'polite' });
  const history = h('tbody');
  const analysisBox = h('section', { class: 'card', 'aria-labelledby': 'analysis-h' });
  const chunksBox = h('section', { class: 'card', 'aria-labelledby': 'chunks-h' });

  const loadJobs = async () => {
    const { items } = await api<{ items: Job[] }>('GET', `jobs?documentId=${id}&limit=50`);
    clear(history);
    for (const j of items) {
      history.append(
        h('tr', { 'data-job': j.id }, h('td', null, j.type ?? 'ingest'), h('td', null, statusBadge(j.status, j.progress, j.step)), h('td', null, String(j.attempts)), h('td', null, j.error ?? ''), h('td', { class: 'nowrap' }, formatDate(j.createdAt))),
      );
    }
  };

  const loadAnalysis = async () => {
    clear(analysisBox);
    analysisBox.append(h('h2', { id: 'analysis-h' }, t('analysis')));
    if (canWrite(me)) {
      analysisBox.append(
        h('div', { class: 'row' }, h('button', { type: 'button', id: 'analyze', onclick: async () => {
          const job = await api<Job>('POST', `documents/${id}/analyses`);
          clear(analysisStatus);
          analysisStatus.append(statusBadge(job.status, job.progress, job.step));
          await loadJobs();
        } }, t('analyze')), analysisStatus),
      );
    }
    const a = await optional<Analysis>('GET', `documents/${id}/analysis`).catch(() => null);
    analysisBox.append(a ? analysisView(a, id) : h('p', { class: 'muted' }, t('noAnalysis')));
  };

  const loadChunks = async () => {
    const { items } = await api<{ items: Chunk[] }>('GET', `documents/${id}/chunks`);
    clear(chunksBox);
    const pages = new Map<number | null, Chunk[]>();
    for (const c of items) pages.set(c.page, [...(pages.get(c.page) ?? []), c]);
    append(chunksBox, [
      h('h2', { id: 'chunks-h' }, `${t('chunks')} (${items.length}) · ${t('pages')}: ${[...pages.keys()].filter((p) => p !== null).length}`),
      [...pages.entries()].map(([page, chunks]) =>
        h(
          'details',
          { class: 'page-group', 'data-page': page ?? '' },
          h('summary', null, page === null ? '—' : `${t('page')} ${page}`, ` (${chunks.length})`),
          chunks.map((c) => h('div', { class: 'chunk', id: `chunk-${c.id}` }, c.heading ? h('strong', null, c.heading) : null, h('p', null, c.text))),
        ),
      ),
    ]);
  };

  root.append(
    h('p', null, h('a', { href: '#/documents' }, `← ${t('documents')}`)),
    h('h1', null, doc.title || doc.filename || doc.sourceId),
    h('dl', { class: 'meta' }, h('dt', null, t('status')), h('dd', null, status), h('dt', null, t('type')), h('dd', null, doc.mime ?? ''), h('dt', null, t('tags')), h('dd', null, doc.tags.join(', ')), h('dt', null, t('version')), h('dd', null, String(doc.version ?? 1)), h('dt', null, t('updated')), h('dd', null, formatDate(doc.updatedAt))),
    analysisBox,
    h('section', { class: 'card', 'aria-labelledby': 'jobs-h' }, h('h2', { id: 'jobs-h' }, t('jobHistory')), h('div', { class: 'table-wrap' }, h('table', null, h('thead', null, h('tr', null, [t('type'), t('status'), t('attempts'), t('error'), t('when')].map((x) => h('th', { scope: 'col' }, x)))), history))),
    chunksBox,
  );
  await Promise.all([loadJobs(), loadAnalysis(), loadChunks()]);
  follow(`documents/${id}/events`, signal, (job) => {
    const target = (job.type ?? 'ingest') === 'ingest' ? status : analysisStatus;
    clear(target);
    target.append(statusBadge(job.status, job.progress, job.step));
    void loadJobs();
    if (job.status === 'ready') void (job.type === 'analyze' ? loadAnalysis() : loadChunks());
  });
}
