import { api, ApiError, streamEvents } from '../api.ts';
import { clear, escapeHtml, h, highlight, safeSnippet } from '../dom.ts';
import { t } from '../i18n.ts';
import type { PageContext } from '../main.ts';

interface Chat {
  id: string;
  title: string | null;
  updatedAt: string;
}

interface Source {
  n: number;
  chunkId: string;
  documentId: string;
  title: string | null;
  page: number | null;
  snippet?: string;
  ranks?: { lexical: number | null; dense: number | null };
}

interface Message {
  id: string;
  role: 'user' | 'assistant';
  content: string;
  sources: Source[] | null;
}

/** Answer text with `[n]` markers turned into citation chips (buttons opening the passage). */
function answerBody(content: string, sources: Source[], question: string): HTMLElement {
  const body = h('div', { class: 'answer-text' });
  const parts = content.split(/(\[\d+\])/);
  for (const part of parts) {
    const m = /^\[(\d+)\]$/.exec(part);
    const source = m ? sources.find((s) => s.n === Number(m[1])) : undefined;
    if (source) {
      body.append(
        h(
          'button',
          {
            type: 'button',
            class: 'chip',
            'data-cite': source.n,
            'aria-label': `${t('passage')} ${source.n}: ${source.title ?? ''}${source.page ? `, ${t('page')} ${source.page}` : ''}`,
            onclick: () => void openPassage(source, question),
          },
          String(source.n),
        ),
      );
    } else body.append(part);
  }
  return body;
}

/** A modal with the cited chunk, the question's words highlighted, and its page. */
async function openPassage(source: Source, question: string): Promise<void> {
  const text = h('div', { class: 'passage-text', html: source.snippet ? safeSnippet(source.snippet) : escapeHtml(t('loading')) });
  const dialog = h(
    'dialog',
    { class: 'passage', 'aria-labelledby': 'passage-title', onclose: () => dialog.remove() },
    h('h2', { id: 'passage-title' }, `[${source.n}] ${source.title ?? source.documentId}`),
    h('p', { class: 'page-label', 'data-page': source.page ?? '' }, source.page ? `${t('page')} ${source.page}` : ''),
    text,
    h('p', null, h('a', { href: `#/document/${source.documentId}` }, t('open'))),
    h('form', { method: 'dialog' }, h('button', { type: 'submit', class: 'primary' }, t('close'))),
  );
  document.body.append(dialog);
  dialog.showModal();
  try {
    const { items } = await api<{ items: Array<{ id: string; text: string; page: number | null }> }>('GET', `documents/${source.documentId}/chunks`);
    const chunk = items.find((c) => c.id === source.chunkId);
    if (chunk) {
      const marked = source.snippet ? [...source.snippet.matchAll(/<mark>(.*?)<\/mark>/g)].map((m) => m[1]!) : [];
      text.innerHTML = highlight(chunk.text, [...marked, ...question.split(/[^\p{L}\p{N}]+/u)]);
    }
  } catch {
    /* the snippet stays */
  }
}

function sourcesPanel(sources: Source[]): HTMLElement {
  return h(
    'details',
    { class: 'sources' },
    h('summary', null, `${t('showSources')} (${sources.length})`),
    h(
      'ol',
      null,
      sources.map((s) =>
        h(
          'li',
          { 'data-source': s.n },
          h('strong', null, `[${s.n}] ${s.title ?? s.documentId}`),
          s.page ? ` · ${t('page')} ${s.page}` : '',
          s.ranks ? h('span', { class: 'ranks' }, ` · ${t('lexicalRank')}: ${s.ranks.lexical ?? '—'} · ${t('denseRank')}: ${s.ranks.dense ?? '—'}`) : '',
          s.snippet ? h('div', { class: 'snippet', html: safeSnippet(s.snippet) }) : '',
        ),
      ),
    ),
  );
}

function messageView(m: Message, question: string): HTMLElement {
  const sources = m.sources ?? [];
  return h(
    'article',
    { class: `msg ${m.role}`, 'aria-label': m.role === 'user' ? t('you') : t('assistant') },
    h('div', { class: 'who-label' }, m.role === 'user' ? t('you') : t('assistant')),
    m.role === 'assistant' ? answerBody(m.content, sources, question) : h('div', { class: 'answer-text' }, m.content),
    m.role === 'assistant' && sources.length ? sourcesPanel(sources) : null,
  );
}

export async function chatPage(ctx: PageContext): Promise<void> {
  const { root, signal } = ctx;
  const currentId = ctx.params[0] ?? null;
  const list = h('ul', { class: 'chat-list', 'aria-label': t('chats') });
  const log = h('section', { class: 'log', 'aria-live': 'polite', 'aria-label': t('assistant') });
  const input = h('textarea', { id: 'question', name: 'question', rows: 2, placeholder: t('askPlaceholder'), required: true });
  const rag = h('input', { type: 'checkbox', id: 'rag', checked: true });
  const send = h('button', { type: 'submit', class: 'primary', id: 'send' }, t('send'));
  const stop = h('button', { type: 'button', id: 'stop', hidden: true }, t('stop'));
  const error = h('p', { class: 'error', role: 'alert' });
  let running: AbortController | null = null;
  signal.addEventListener('abort', () => running?.abort());

  const loadList = async () => {
    const { items } = await api<{ items: Chat[] }>('GET', 'chats');
    clear(list);
    if (!items.length) list.append(h('li', { class: 'muted' }, t('noChats')));
    for (const c of items) {
      list.append(
        h(
          'li',
          { class: c.id === currentId ? 'current' : '' },
          h('a', { href: `#/chat/${c.id}`, 'aria-current': c.id === currentId ? 'page' : undefined }, c.title || t('untitled')),
          h('button', {
            type: 'button', class: 'icon', title: t('rename'), 'aria-label': `${t('rename')}: ${c.title || t('untitled')}`,
            onclick: async () => {
              const title = prompt(t('renamePrompt'), c.title ?? '');
              if (title?.trim()) await api('PATCH', `chats/${c.id}`, { title: title.trim() });
              await loadList();
            },
          }, '✎'),
          h('button', {
            type: 'button', class: 'icon', title: t('delete'), 'aria-label': `${t('delete')}: ${c.title || t('untitled')}`,
            onclick: async () => {
              if (!confirm(t('confirmDelete'))) return;
              await api('DELETE', `chats/${c.id}`);
              if (c.id === currentId) location.hash = '#/chat';
              else await loadList();
            },
          }, '🗑'),
        ),
      );
    }
  };

  const ask = async (e: Event) => {
    e.preventDefault();
    const question = input.value.trim();
    if (!question || running) return;
    error.textContent = '';
    let chatId = currentId;
    if (!chatId) {
      const chat = await api<Chat>('POST', 'chats', { title: question.slice(0, 80) });
      chatId = chat.id;
      history.replaceState(null, '', `#/chat/${chatId}`);
    }
    input.value = '';
    log.querySelector('.muted')?.remove();
    log.append(messageView({ id: '', role: 'user', content: question, sources: null }, question));
    const answer = h('article', { class: 'msg assistant streaming', 'aria-busy': 'true' }, h('div', { class: 'who-label' }, t('assistant')));
    let body = answerBody('', [], question);
    answer.append(body);
    log.append(answer);
    let content = '';
    let sources: Source[] = [];
    running = new AbortController();
    send.disabled = true;
    stop.hidden = false;
    stop.focus();
    try {
      await streamEvents('POST', `chats/${chatId}/messages`, { content: question, rag: rag.checked }, ({ event, data }) => {
        if (event === 'sources') sources = (data as { sources: Source[] }).sources;
        else if (event === 'token') {
          content += (data as { text: string }).text;
          answer.dataset.tokens = String(Number(answer.dataset.tokens ?? 0) + 1);
        }
        else if (event === 'error') error.textContent = (data as { message: string }).message;
        else if (event === 'done') answer.dataset.done = 'true';
        const next = answerBody(content, sources, question);
        body.replaceWith(next);
        body = next;
        log.scrollTop = log.scrollHeight;
      }, running.signal);
    } catch (err) {
      if ((err as Error).name === 'AbortError') answer.append(h('p', { class: 'muted stopped' }, t('stopped')));
      else error.textContent = err instanceof ApiError ? `${err.code}: ${err.message}` : String(err);
    } finally {
      running = null;
      answer.classList.remove('streaming');
      answer.removeAttribute('aria-busy');
      if (sources.length) answer.append(sourcesPanel(sources));
      send.disabled = false;
      stop.hidden = true;
      input.focus();
      void loadList();
    }
  };

  stop.addEventListener('click', () => running?.abort());
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey) {
      e.preventDefault();
      form.requestSubmit();
    }
  });
  const form = h(
    'form',
    { class: 'composer', onsubmit: ask },
    h('label', { for: 'question', class: 'sr-only' }, t('question')),
    input,
    h('div', { class: 'row' }, h('label', { class: 'check' }, rag, ' ', t('useDocuments')), h('div', { class: 'grow' }), stop, send),
    error,
  );
  root.append(
    h(
      'div',
      { class: 'chat-layout' },
      h('aside', { class: 'chat-side', 'aria-label': t('chats') }, h('a', { class: 'button primary', href: '#/chat', id: 'new-chat' }, t('newChat')), list),
      h('div', { class: 'chat-main' }, log, form),
    ),
  );
  void loadList();
  if (currentId) {
    const chat = await api<{ messages: Message[] }>('GET', `chats/${currentId}`).catch(() => null);
    let question = '';
    for (const m of chat?.messages ?? []) {
      if (m.role === 'user') question = m.content;
      log.append(messageView(m, question));
    }
  } else log.append(h('p', { class: 'muted' }, t('emptyChat')));
  input.focus();
}
