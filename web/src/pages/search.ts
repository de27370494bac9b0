import { api, ApiError } from '../api.ts';
import { clear, h, safeSnippet } from '../dom.ts';
import { t } from '../i18n.ts';
import type { PageContext } from '../main.ts';

interface Hit {
  chunkId: string;
  documentId: string;
  title: string | null;
  page: number | null;
  snippet: string;
  score: number;
  ranks: { lexical: number | null; dense: number | null };
  lang: string;
  mime: string;
  tags: string[];
}

const TYPES: Array<[string, string]> = [
  ['application/pdf', 'PDF'],
  ['application/vnd.openxmlformats-officedocument.wordprocessingml.document', 'DOCX'],
  ['text/html', 'HTML'],
  ['text/markdown', 'Markdown'],
  ['text/plain', 'Text'],
  ['image/png', 'PNG'],
  ['image/jpeg', 'JPEG'],
  ['image/tiff', 'TIFF'],
];

export async function searchPage(ctx: PageContext): Promise<void> {
  const { root } = ctx;
  const query = h('input', { id: 'search-query', type: 'search', name: 'q', required: true, placeholder: t('searchPlaceholder') });
  const tag = h('input', { id: 'search-tag', name: 'tag', placeholder: t('tags') });
  const type = h('select', { id: 'search-type', name: 'type' }, h('option', { value: '' }, t('anyType')), TYPES.map(([v, l]) => h('option', { value: v }, l)));
  const lang = h('select', { id: 'search-lang', name: 'lang' }, h('option', { value: '' }, t('anyLanguage')), h('option', { value: 'en' }, 'English'), h('option', { value: 'ru' }, 'Русский'));
  const results = h('ol', { class: 'hits', 'aria-live': 'polite', 'aria-label': t('search') });
  const error = h('p', { class: 'error', role: 'alert' });

  const run = async (e: Event) => {
    e.preventDefault();
    error.textContent = '';
    const filters: Record<string, string[]> = {};
    if (tag.value.trim()) filters.tags = tag.value.split(',').map((x) => x.trim()).filter(Boolean);
    if (type.value) filters.mimes = [type.value];
    if (lang.value) filters.langs = [lang.value];
    try {
      const { hits } = await api<{ hits: Hit[] }>('POST', 'search', { query: query.value, limit: 20, filters });
      clear(results);
      if (!hits.length) results.append(h('li', { class: 'muted' }, t('noHits')));
      for (const hit of hits) {
        results.append(
          h(
            'li',
            { class: 'hit', 'data-document': hit.documentId },
            h('a', { href: `#/document/${hit.documentId}` }, hit.title ?? hit.documentId),
            hit.page ? h('span', { class: 'muted' }, ` · ${t('page')} ${hit.page}`) : '',
            h('div', { class: 'snippet', html: safeSnippet(hit.snippet) }),
            h(
              'div',
              { class: 'ranks small' },
              `${t('lexicalRank')}: ${hit.ranks.lexical ?? '—'} · ${t('denseRank')}: ${hit.ranks.dense ?? '—'} · ${t('score')} ${hit.score.toFixed(4)} · ${hit.lang} · `,
              hit.tags.map((x) => h('span', { class: 'tag' }, x)),
            ),
          ),
        );
      }
    } catch (err) {
      error.textContent = err instanceof ApiError ? `${err.code}: ${err.message}` : String(err);
    }
  };

  root.append(
    h('h1', null, t('search')),
    h(
      'form',
      { class: 'card search-form', onsubmit: run, role: 'search' },
      h('label', { for: 'search-query' }, t('query')),
      query,
      h(
        'div',
        { class: 'row wrap' },
        h('label', { for: 'search-tag' }, t('tags')),
        tag,
        h('label', { for: 'search-type' }, t('type')),
        type,
        h('label', { for: 'search-lang' }, t('language_')),
        lang,
        h('button', { type: 'submit', class: 'primary' }, t('search')),
      ),
      error,
    ),
    results,
  );
  query.focus();
}
