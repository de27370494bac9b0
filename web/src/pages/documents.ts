import { api, ApiError, streamEvents, uploadFile, type DocumentView, type Job } from '../api.ts';
import { append, clear, h } from '../dom.ts';
import { formatDate, statusLabel, t } from '../i18n.ts';
import { canWrite, type PageContext } from '../main.ts';

/** Keeps a live SSE subscription open until the page is left, reconnecting after a drop. */
export function followEvents(path: string, signal: AbortSignal, name: string, onEvent: (data: unknown) => void): void {
  const run = async () => {
    while (!signal.aborted) {
      const ok = await streamEvents('GET', path, undefined, ({ event, data }) => event === name && onEvent(data), signal).then(() => true, (err: unknown) => !(err instanceof ApiError && err.status >= 400 && err.status < 500));
      // A route this server lacks, or a role it refuses, will not change by trying again.
      if (!ok) return;
      if (!signal.aborted) await new Promise((r) => setTimeout(r, 1000));
    }
  };
  void run();
}

/** Job updates of an SSE job stream. */
export function follow(path: string, signal: AbortSignal, onJob: (job: Job) => void): void {
  followEvents(path, signal, 'job', (data) => onJob(data as Job));
}

export function statusBadge(status: string, progress?: number, step?: string | null): HTMLElement {
  const pct = progress !== undefined && status === 'running' ? ` ${Math.round(progress * 100)}%` : '';
  return h('span', { class: `badge st-${status}`, 'data-status': status }, `${statusLabel(status)}${step && status === 'running' ? ` · ${step}` : ''}${pct}`);
}

export async function documentsPage(ctx: PageContext): Promise<void> {
  const { root, signal, me } = ctx;
  const writer = canWrite(me);
  const docs = new Map<string, DocumentView>();
  const jobs = new Map<string, Job>(); // latest job per document
  const tbody = h('tbody');
  const statusFilter = h(
    'select',
    { id: 'filter-status', 'aria-label': t('filterStatus'), onchange: () => draw() },
    h('option', { value: '' }, t('all')),
    ['queued', 'running', 'ready', 'failed', 'canceled'].map((s) => h('option', { value: s }, statusLabel(s))),
  );
  const tagFilter = h('input', { id: 'filter-tag', type: 'search', placeholder: t('tags'), 'aria-label': t('filterTag'), oninput: () => draw() });

  const noteJob = (job: Job) => {
    if (!job.documentId) return;
    const known = jobs.get(job.documentId);
    if (known && known.id !== job.id && known.createdAt > job.createdAt) return;
    if ((job.type ?? 'ingest') !== 'ingest') return;
    jobs.set(job.documentId, job);
    const doc = docs.get(job.documentId);
    if (doc && job.status !== 'ready') doc.status = job.status;
    else if (doc && job.status === 'ready') doc.status = 'ready';
  };

  // Each button names its document too: a screen reader's list of buttons is not ten "Delete"s.
  const act = (label: string, fn: () => Promise<unknown>, name: string, of: string) =>
    h('button', { type: 'button', 'data-action': name, 'aria-label': `${label}: ${of}`, onclick: async () => { try { await fn(); } catch (err) { alert(err instanceof ApiError ? err.message : String(err)); } await reload(); } }, label);

  const draw = () => {
    clear(tbody);
    const tag = tagFilter.value.trim().toLowerCase();
    const rows = [...docs.values()].filter((d) => (!statusFilter.value || d.status === statusFilter.value) && (!tag || d.tags.some((x) => x.toLowerCase().includes(tag))));
    if (!rows.length) tbody.append(h('tr', null, h('td', { colspan: 5, class: 'muted' }, t('noDocuments'))));
    for (const d of rows) {
      const job = jobs.get(d.id);
      const status = job && (job.status === 'running' || job.status === 'queued') ? job.status : d.status;
      const name = d.title || d.filename || d.sourceId;
      tbody.append(
        h(
          'tr',
          { 'data-document': d.id, 'data-name': d.filename ?? d.title ?? '' },
          h('td', null, h('a', { href: `#/document/${d.id}` }, name)),
          h('td', null, statusBadge(status, job?.progress, job?.step), job?.error ? h('div', { class: 'error small' }, job.error) : null),
          h('td', null, d.tags.map((x) => h('span', { class: 'tag' }, x))),
          h('td', { class: 'nowrap' }, formatDate(d.updatedAt)),
          h(
            'td',
            { class: 'actions' },
            writer && job && (job.status === 'queued' || job.status === 'running') ? act(t('cancel'), () => api('POST', `jobs/${job.id}/cancel`), 'cancel', name) : null,
            writer && job && (job.status === 'failed' || job.status === 'canceled') ? act(t('retry'), () => api('POST', `jobs/${job.id}/retry`), 'retry', name) : null,
            writer ? act(t('delete'), async () => { if (confirm(t('confirmDelete'))) await api('DELETE', `documents/${d.id}`); }, 'delete', name) : null,
          ),
        ),
      );
    }
  };

  const reload = async () => {
    const [{ items }, jobList] = await Promise.all([api<{ items: DocumentView[] }>('GET', 'documents?limit=200'), api<{ items: Job[] }>('GET', 'jobs?limit=200')]);
    docs.clear();
    for (const d of items) docs.set(d.id, d);
    for (const j of jobList.items.reverse()) noteJob(j);
    draw();
  };

  const uploads = h('ul', { class: 'uploads', 'aria-label': t('upload') });
  const tagsInput = h('input', { id: 'upload-tags', name: 'tags', placeholder: t('tagsHint') });
  const analyze = h('input', { type: 'checkbox', id: 'upload-analyze' });
  const fileInput = h('input', { type: 'file', id: 'files', multiple: true, class: 'sr-only', tabindex: -1, 'aria-label': t('chooseFiles'), onchange: () => void send([...(fileInput.files ?? [])]) });

  const send = async (files: File[]) => {
    await Promise.all(
      files.map(async (file) => {
        const bar = h('progress', { max: 1, value: 0, 'aria-label': `${t('uploading')} ${file.name}` });
        const state = h('span', { class: 'upload-state' }, t('uploading'));
        uploads.append(h('li', { 'data-file': file.name }, h('span', { class: 'fname' }, file.name), bar, state));
        try {
          const result = await uploadFile(file, { tags: tagsInput.value, analyze: analyze.checked ? 'true' : '' }, (f) => (bar.value = f));
          state.textContent = t('uploaded');
          docs.set(result.document.id, result.document);
          if (result.job) noteJob(result.job);
          draw();
        } catch (err) {
          state.textContent = err instanceof ApiError ? `${err.code}: ${err.message}` : String(err);
          state.classList.add('error');
        }
      }),
    );
    fileInput.value = '';
  };

  const drop = h(
    'div',
    {
      class: 'dropzone',
      id: 'dropzone',
      tabindex: 0,
      role: 'button',
      'aria-label': t('dropHere'),
      onclick: () => fileInput.click(),
      onkeydown: (e: KeyboardEvent) => (e.key === 'Enter' || e.key === ' ') && (e.preventDefault(), fileInput.click()),
      ondragover: (e: DragEvent) => { e.preventDefault(); drop.classList.add('over'); },
      ondragleave: () => drop.classList.remove('over'),
      ondrop: (e: DragEvent) => { e.preventDefault(); drop.classList.remove('over'); void send([...(e.dataTransfer?.files ?? [])]); },
    },
    t('dropHere'),
  );

  append(root, [
    h('h1', null, t('documents')),
    writer
      ? h(
          'section',
          { class: 'card', 'aria-label': t('upload') },
          drop,
          fileInput,
          h('div', { class: 'row wrap' }, h('label', { for: 'upload-tags' }, `${t('tags')} (${t('tagsHint')})`), tagsInput, h('label', { class: 'check' }, analyze, ' ', t('analyzeOnUpload'))),
          uploads,
        )
      : null,
    h('div', { class: 'row wrap filters' }, statusFilter, tagFilter, h('button', { type: 'button', onclick: () => void reload() }, t('refresh'))),
    h(
      'div',
      { class: 'table-wrap' },
      h('table', { class: 'docs' }, h('thead', null, h('tr', null, [t('title'), t('status'), t('tags'), t('updated'), t('actions')].map((x) => h('th', { scope: 'col' }, x)))), tbody),
    ),
  ]);
  await reload();
  follow('jobs/events', signal, (job) => {
    noteJob(job);
    if (job.documentId && !docs.has(job.documentId)) void reload();
    else draw();
  });
}
