import { api, ApiError, optional } from '../api.ts';
import { followEvents as follow } from './documents.ts';
import { append, clear, h } from '../dom.ts';
import { formatDate, t, type Key } from '../i18n.ts';
import type { PageContext } from '../main.ts';

interface Readiness {
  service: string;
  nodeId: string;
  ready: boolean;
  checks: Record<string, unknown>;
  error?: string;
}

interface ModelEntry {
  alias: string;
  kind: string;
  activeVersion: string | null;
  previousVersion: string | null;
  versions: Array<{ version: string; status: string; createdAt: string }>;
}

/** One readiness check as text: `db ✓ 14 ms`, `queue ✗ connection refused`. */
function checkText(name: string, value: unknown): string {
  if (typeof value !== 'object' || value === null) return `${name}: ${String(value)}`;
  const c = value as { ok?: boolean; ms?: number; error?: string };
  return `${name} ${c.ok ? '✓' : '✗'}${c.ms !== undefined ? ` ${Math.round(c.ms)} ms` : ''}${c.error ? ` ${c.error}` : ''}`;
}

const itemsOf = <T>(x: T[] | { items: T[] } | null): T[] | null => (x === null ? null : Array.isArray(x) ? x : x.items);

function section(id: string, title: Key, body: HTMLElement, refresh: () => Promise<void>): HTMLElement {
  return h(
    'section',
    { class: 'card', id, 'aria-labelledby': `${id}-h` },
    h('div', { class: 'row' }, h('h2', { id: `${id}-h` }, t(title)), h('div', { class: 'grow' }), h('button', { type: 'button', onclick: () => void refresh() }, t('refresh'))),
    body,
  );
}

const table = (head: string[], rows: HTMLElement[]) =>
  h('div', { class: 'table-wrap' }, h('table', null, h('thead', null, h('tr', null, head.map((x) => h('th', { scope: 'col' }, x)))), h('tbody', null, rows)));

function failed(box: HTMLElement, err: unknown): void {
  clear(box);
  box.append(h('p', { class: 'error', role: 'alert' }, err instanceof ApiError ? `${err.code}: ${err.message}` : String(err)));
}

export async function adminPage(ctx: PageContext): Promise<void> {
  const { root } = ctx;
  const status = h('div');
  const letters = h('div');
  const models = h('div');
  const audit = h('div');
  const keys = h('div');
  const note = h('p', { class: 'notice', role: 'status' });

  const loadStatus = async () => {
    try {
      const s = await api<{ ready: boolean; missing: string[]; services: Readiness[] }>('GET', 'status');
      clear(status);
      status.append(
        h('p', null, h('span', { class: `badge ${s.ready ? 'st-ready' : 'st-failed'}` }, s.ready ? t('ready') : t('notReady')), s.missing.length ? ` ${t('missing')}: ${s.missing.join(', ')}` : ''),
        table(
          [t('service'), t('node'), t('status'), ''],
          s.services.map((r) =>
            h('tr', { 'data-service': r.service }, h('td', null, r.service), h('td', null, r.nodeId), h('td', null, h('span', { class: `badge ${r.ready ? 'st-ready' : 'st-failed'}` }, r.ready ? t('ready') : t('notReady'))), h('td', { class: 'small' }, r.error ?? Object.entries(r.checks).map(([k, v]) => checkText(k, v)).join(' · '))),
          ),
        ),
      );
    } catch (err) {
      failed(status, err);
    }
  };

  const loadLetters = async () => {
    try {
      const d = await api<{ items: Array<{ jobId: string; type: string; attempt: number; reason: string; deadAt: string }>; depth?: unknown }>('GET', 'admin/dead-letters');
      clear(letters);
      if (!d.items.length) letters.append(h('p', { class: 'muted' }, t('noDeadLetters')));
      else
        letters.append(
          table(
            [t('job'), t('type'), t('reason'), t('when'), ''],
            d.items.map((l) =>
              h(
                'tr',
                { 'data-job': l.jobId },
                h('td', { class: 'mono' }, l.jobId.slice(0, 8)),
                h('td', null, l.type),
                h('td', null, l.reason),
                h('td', { class: 'nowrap' }, formatDate(l.deadAt)),
                h('td', null, h('button', { type: 'button', 'data-action': 'replay', onclick: async () => {
                  try {
                    await api('POST', `admin/dead-letters/${l.jobId}/replay`);
                    note.textContent = `${t('replayed')}: ${l.jobId}`;
                  } catch (err) {
                    note.textContent = err instanceof ApiError ? err.message : String(err);
                  }
                  await loadLetters();
                } }, t('replay'))),
              ),
            ),
          ),
        );
    } catch (err) {
      failed(letters, err);
    }
  };

  type Reindex = { alias: string; version: string; tenantId: string; state: string; done: number; total: number; progress: number; error: string | null };
  const reindexes = new Map<string, Reindex>();
  const reindexBox = h('div');
  let following = false;
  const drawReindexes = () => {
    clear(reindexBox);
    if (!reindexes.size) return void reindexBox.append(h('p', { class: 'muted' }, '—'));
    reindexBox.append(
      table(
        [t('alias'), t('version'), t('status'), t('progress')],
        [...reindexes.values()].map((r) =>
          h('tr', { 'data-reindex': `${r.alias}@${r.version}` }, h('td', null, r.alias), h('td', null, `${r.version} · ${r.tenantId}`), h('td', null, r.state, r.error ? h('div', { class: 'error small' }, r.error) : null), h('td', null, h('progress', { max: 1, value: r.progress, 'aria-label': `${t('reindex')} ${r.alias} ${r.version}` }), ` ${r.done}/${r.total}`)),
        ),
      ),
    );
  };

  const loadModels = async () => {
    try {
      const list = itemsOf(await optional<ModelEntry[] | { items: ModelEntry[] }>('GET', 'admin/models'));
      clear(models);
      if (!list) return void models.append(h('p', { class: 'muted' }, t('notAvailable')));
      const status = await optional<{ reindexes: Reindex[] }>('GET', 'admin/models/status').catch(() => null);
      for (const r of status?.reindexes ?? []) reindexes.set(`${r.alias}@${r.version}@${r.tenantId}`, r);
      models.append(
        table(
          [t('alias'), t('kind'), t('version'), ''],
          list.map((m) => {
            const pick = h('select', { 'aria-label': `${t('version')} ${m.alias}` }, m.versions.map((v) => h('option', { value: v.version, selected: v.version === m.activeVersion }, `${v.version}${v.version === m.activeVersion ? ` (${t('active')})` : ''}`)));
            const run = (path: string, body?: unknown) => async () => {
              try {
                await api('POST', path, body);
                note.textContent = t('done');
              } catch (err) {
                note.textContent = err instanceof ApiError ? `${err.code}: ${err.message}` : String(err);
              }
              await loadModels();
            };
            return h(
              'tr',
              { 'data-alias': m.alias },
              h('td', null, m.alias),
              h('td', null, m.kind),
              h('td', null, pick),
              h(
                'td',
                { class: 'actions' },
                h('button', { type: 'button', onclick: () => void run(`admin/models/${encodeURIComponent(m.alias)}/switch`, { version: pick.value })() }, t('switch')),
                m.previousVersion ? h('button', { type: 'button', onclick: () => void run(`admin/models/${encodeURIComponent(m.alias)}/rollback`)() }, t('rollback')) : null,
                m.kind === 'embed' && status ? h('button', { type: 'button', onclick: () => void run(`admin/models/${encodeURIComponent(m.alias)}/${encodeURIComponent(pick.value)}/reindex`)() }, t('reindex')) : null,
              ),
            );
          }),
        ),
      );
      if (status) {
        models.append(h('h3', null, t('reindex')), reindexBox);
        drawReindexes();
        if (!following) {
          following = true;
          follow('admin/models/events', ctx.signal, 'progress', (r) => {
            const view = r as Reindex;
            reindexes.set(`${view.alias}@${view.version}@${view.tenantId}`, view);
            drawReindexes();
          });
        }
      }
    } catch (err) {
      failed(models, err);
    }
  };

  const loadAudit = async () => {
    try {
      type AuditRow = { actor: string; action: string; target: string | null; at?: string; createdAt?: string };
      const list = itemsOf(await optional<AuditRow[] | { items: AuditRow[] }>('GET', 'audit?limit=50'));
      clear(audit);
      if (!list) return void audit.append(h('p', { class: 'muted' }, t('notAvailable')));
      audit.append(table([t('when'), t('actor'), t('action'), t('target')], list.map((a) => h('tr', null, h('td', { class: 'nowrap' }, formatDate(a.at ?? a.createdAt)), h('td', null, a.actor), h('td', null, a.action), h('td', null, a.target ?? '')))));
    } catch (err) {
      failed(audit, err);
    }
  };

  const ROLE_NAMES = ['viewer', 'editor', 'tenant_admin', 'admin'];
  const roleSelect = (label: string, current?: string) =>
    h('select', { 'aria-label': label }, ROLE_NAMES.map((r) => h('option', { value: r, selected: r === current }, r)));

  const loadKeys = async () => {
    try {
      type KeyRow = { id: string; name?: string; userId?: string; roles?: string[]; createdAt: string; lastUsedAt?: string | null; revokedAt?: string | null };
      const list = itemsOf(await optional<KeyRow[] | { items: KeyRow[] }>('GET', 'api-keys'));
      clear(keys);
      if (!list) return void keys.append(h('p', { class: 'muted' }, t('notAvailable')));
      const name = h('input', { id: 'key-name', 'aria-label': t('name'), placeholder: t('name') });
      const role = roleSelect(t('role'), 'viewer');
      const shown = h('p', { class: 'notice', role: 'status' });
      append(keys, [
        h('form', { class: 'row wrap', onsubmit: async (e: Event) => {
          e.preventDefault();
          try {
            const created = await api<{ key: string }>('POST', 'api-keys', { name: name.value.trim() || 'ui', roles: [role.value] });
            await loadKeys();
            keys.prepend(h('p', { class: 'notice', role: 'status' }, `${t('newKeyShown')} `, h('code', { class: 'mono', 'data-new-key': '' }, created.key)));
          } catch (err) {
            shown.textContent = err instanceof ApiError ? `${err.code}: ${err.message}` : String(err);
          }
        } }, name, role, h('button', { type: 'submit' }, t('create'))),
        shown,
        table(
          [t('name'), t('users'), t('role'), t('when'), ''],
          list.map((k) => h('tr', { 'data-key': k.id }, h('td', null, k.name ?? k.id.slice(0, 8)), h('td', null, k.userId ?? ''), h('td', null, (k.roles ?? []).join(', ')), h('td', { class: 'nowrap' }, formatDate(k.createdAt)), h('td', null, k.revokedAt ? `${t('revoke')}: ${formatDate(k.revokedAt)}` : h('button', { type: 'button', onclick: async () => { await api('DELETE', `api-keys/${k.id}`); await loadKeys(); } }, t('revoke'))))),
        ),
      ]);
    } catch (err) {
      failed(keys, err);
    }
  };

  const users = h('div');
  const loadUsers = async () => {
    try {
      type UserRow = { userId: string; roles: string[]; memberSince: string };
      const list = itemsOf(await optional<UserRow[] | { items: UserRow[] }>('GET', 'users'));
      clear(users);
      if (!list) return void users.append(h('p', { class: 'muted' }, t('notAvailable')));
      users.append(
        table(
          [t('name'), t('role'), t('when'), ''],
          list.map((u) => {
            const role = roleSelect(`${t('role')} ${u.userId}`, u.roles[0]);
            return h('tr', { 'data-user': u.userId }, h('td', null, u.userId), h('td', null, role), h('td', { class: 'nowrap' }, formatDate(u.memberSince)), h('td', null, h('button', { type: 'button', onclick: async () => {
              try {
                await api('PUT', `users/${encodeURIComponent(u.userId)}/roles`, { roles: [role.value] });
                note.textContent = t('done');
              } catch (err) {
                note.textContent = err instanceof ApiError ? `${err.code}: ${err.message}` : String(err);
              }
              await loadUsers();
            } }, t('save'))));
          }),
        ),
      );
    } catch (err) {
      failed(users, err);
    }
  };

  const maintenance = h('div');
  const loadMaintenance = async () => {
    try {
      const mode = await optional<{ enabled: boolean; reason: string | null; since: string | null; by?: string | null }>('GET', 'admin/maintenance');
      clear(maintenance);
      if (!mode) return void maintenance.append(h('p', { class: 'muted' }, t('notAvailable')));
      const reason = h('input', { id: 'maintenance-reason', 'aria-label': t('reason'), placeholder: t('reason'), value: mode.reason ?? '' });
      append(maintenance, [
        h('p', null, h('span', { class: `badge ${mode.enabled ? 'st-failed' : 'st-ready'}`, 'data-maintenance': String(mode.enabled) }, mode.enabled ? t('maintenanceOn') : t('maintenanceOff')), mode.since ? ` · ${formatDate(mode.since)}${mode.by ? ` · ${mode.by}` : ''}` : ''),
        ctx.me.roles.includes('admin')
          ? h('div', { class: 'row wrap' }, reason, h('button', { type: 'button', id: 'maintenance-toggle', onclick: async () => {
              try {
                await api('PUT', 'admin/maintenance', { enabled: !mode.enabled, ...(reason.value.trim() ? { reason: reason.value.trim() } : {}) });
                note.textContent = t('done');
              } catch (err) {
                note.textContent = err instanceof ApiError ? `${err.code}: ${err.message}` : String(err);
              }
              await loadMaintenance();
            } }, mode.enabled ? t('maintenanceEnd') : t('maintenanceStart')))
          : null,
      ]);
    } catch (err) {
      failed(maintenance, err);
    }
  };

  root.append(
    h('h1', null, t('admin')),
    note,
    section('maintenance', 'maintenance', maintenance, loadMaintenance),
    section('system', 'systemStatus', status, loadStatus),
    section('dead-letters', 'deadLetters', letters, loadLetters),
    section('models', 'models', models, loadModels),
    section('audit', 'auditLog', audit, loadAudit),
    section('users', 'users', users, loadUsers),
    section('keys', 'apiKeys', keys, loadKeys),
  );
  await Promise.all([loadMaintenance(), loadStatus(), loadLetters(), loadModels(), loadAudit(), loadUsers(), loadKeys()]);
}
