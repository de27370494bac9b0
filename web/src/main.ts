import { api, session, type Me } from './api.ts';
import { clear, h } from './dom.ts';
import { currentLang, setLang, t, type Key, type Lang } from './i18n.ts';
import { chatPage } from './pages/chat.ts';
import { documentsPage } from './pages/documents.ts';
import { documentPage } from './pages/document.ts';
import { searchPage } from './pages/search.ts';
import { adminPage } from './pages/admin.ts';

/** What a page gets: where to render, who is signed in, and a signal that fires when it is left. */
export interface PageContext {
  root: HTMLElement;
  me: Me;
  params: string[];
  signal: AbortSignal;
}

const ADMIN_ROLES = ['admin', 'tenant_admin'];
export const isAdmin = (me: Me) => me.roles.some((r) => ADMIN_ROLES.includes(r));
export const canWrite = (me: Me) => me.roles.some((r) => ['editor', ...ADMIN_ROLES].includes(r));

let me: Me | null = null;
let leave = new AbortController();

function languageSwitch(): HTMLElement {
  const select = h(
    'select',
    { id: 'lang', 'aria-label': t('language'), onchange: (e: Event) => { setLang((e.target as HTMLSelectElement).value as Lang); void render(); } },
    h('option', { value: 'en', selected: currentLang() === 'en' }, 'English'),
    h('option', { value: 'ru', selected: currentLang() === 'ru' }, 'Русский'),
  );
  return select;
}

function signInView(root: HTMLElement, message?: string): void {
  const input = h('input', { id: 'token', name: 'token', type: 'password', autocomplete: 'off', required: true, 'aria-describedby': 'token-help' });
  const status = h('p', { class: 'error', role: 'alert' }, message ?? '');
  const form = h(
    'form',
    {
      class: 'card signin',
      onsubmit: async (e: Event) => {
        e.preventDefault();
        const token = input.value.trim();
        // Checked before it is kept, so a refused token never signs the tab in.
        const res = await fetch('/api/v1/me', { headers: { Authorization: `Bearer ${token}` } }).catch(() => null);
        if (!res?.ok) {
          status.textContent = t('invalidToken');
          input.focus();
          return;
        }
        session.set(token);
        me = (await res.json()) as Me;
        if (!location.hash || location.hash === '#/signin') location.hash = '#/chat';
        else await render();
      },
    },
    h('h1', null, t('signInTitle')),
    h('p', { id: 'token-help' }, t('signInHelp')),
    h('label', { for: 'token' }, t('token')),
    input,
    status,
    h('button', { type: 'submit', class: 'primary' }, t('signIn')),
  );
  clear(root);
  root.append(h('header', { class: 'top' }, h('span', { class: 'brand' }, t('appName')), h('div', { class: 'grow' }), languageSwitch()), h('main', { id: 'main' }, form));
  input.focus();
}

const NAV: Array<[string, Key, (m: Me) => boolean]> = [
  ['chat', 'navChat', () => true],
  ['documents', 'navDocuments', () => true],
  ['search', 'navSearch', () => true],
  ['admin', 'navAdmin', isAdmin],
];

export interface MaintenanceMode {
  enabled: boolean;
  reason: string | null;
  since: string | null;
}

/** Everyone sees the mode: /api/version is public and says it (a refused write says it too). */
async function maintenanceState(): Promise<MaintenanceMode | null> {
  const res = await fetch('/api/version').catch(() => null);
  if (!res?.ok) return null;
  return ((await res.json().catch(() => null)) as { maintenance?: MaintenanceMode } | null)?.maintenance ?? null;
}

function banner(reason: string | null): HTMLElement {
  return h('div', { class: 'banner', id: 'maintenance-banner', role: 'status' }, t('maintenanceOn'), reason ? ` (${reason})` : '');
}

/** The banner above the page while the mode is on, gone when it ends. */
function showMode(mode: MaintenanceMode | null): void {
  const main = document.getElementById('main');
  document.getElementById('maintenance-banner')?.remove();
  if (main && mode?.enabled) main.before(banner(mode.reason));
}

export async function render(): Promise<void> {
  leave.abort();
  leave = new AbortController();
  const root = document.getElementById('app')!;
  document.documentElement.lang = currentLang();
  document.title = t('appName');
  if (!session.token) return signInView(root);
  if (!me) {
    try {
      me = await api<Me>('GET', 'me');
    } catch {
      session.clear();
      return signInView(root, t('invalidToken'));
    }
  }
  const [, name = 'chat', ...params] = (location.hash.replace(/^#\/?/, '/') || '/chat').split('/');
  const main = h('main', { id: 'main', tabindex: -1 });
  const nav = h(
    'nav',
    { 'aria-label': t('appName') },
    NAV.filter(([, , allowed]) => allowed(me!)).map(([path, key]) =>
      h('a', { href: `#/${path}`, 'aria-current': name === path || (name === 'document' && path === 'documents') ? 'page' : undefined }, t(key)),
    ),
  );
  clear(root);
  root.append(
    h('a', { class: 'skip', href: '#main', onclick: (e: Event) => { e.preventDefault(); main.focus(); } }, t('skip')),
    h(
      'header',
      { class: 'top' },
      h('span', { class: 'brand' }, t('appName')),
      nav,
      h('div', { class: 'grow' }),
      h('span', { class: 'who', title: `${me.tenantId} / ${me.roles.join(', ')}` }, `${t('signedInAs')} ${me.userId}`),
      languageSwitch(),
      h('button', { type: 'button', id: 'signout', onclick: () => { session.clear(); me = null; location.hash = '#/signin'; void render(); } }, t('signOut')),
    ),
    main,
  );
  void maintenanceState().then(showMode);
  const ctx: PageContext = { root: main, me, params, signal: leave.signal };
  switch (name) {
    case 'documents':
      return documentsPage(ctx);
    case 'document':
      return documentPage(ctx);
    case 'search':
      return searchPage(ctx);
    case 'admin':
      if (!isAdmin(me)) return void main.append(h('p', { role: 'alert' }, t('forbidden')));
      return adminPage(ctx);
    default:
      return chatPage(ctx);
  }
}

window.addEventListener('hashchange', () => void render());
window.addEventListener('ragmesh:maintenance', () => {
  const main = document.getElementById('main');
  if (main && !document.getElementById('maintenance-banner')) main.before(banner(null));
});
window.addEventListener('ragmesh:maintenance-mode', (e) => showMode((e as CustomEvent<MaintenanceMode>).detail));
window.addEventListener('ragmesh:signed-out', () => {
  me = null;
  void render();
});
void render();
