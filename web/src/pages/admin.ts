import { api, ApiError } from '../api.ts';
import { followEvents as follow } from './documents.ts';
import { append, clear, h } from '../dom.ts';
import { formatDate, t, type Key } from '../i18n.ts';
import type { MaintenanceMode, PageContext } from '../main.ts';

/** Shapes of services/api/routes (system.ts, models.ts, access.ts, admin.ts, documents.ts). */
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

interface Coverage {
  alias: string;
  version: string;
  role: 'active' | 'previous' | 'building';
  tenants: Array<{ tenantId: string; chunks: number; vectors: number; coverage: number }>;
}

interface Reindex {
  alias: string;
  version: string;
  tenantId: string;
  state: string;
  done: number;
  total: number;
  progress: number;
  error: string | null;
}

interface ModelStatus {
  models: ModelEntry[];
  reindexes: Reindex[];
  coverage: Coverage[];
}

interface Depth {
  ready: number;
  dead: number;
}

interface DeadLetters {
  items: Array<{ jobId: string; type: string; attempt: number; reason: string; deadAt: string }>;
  depths?: Record<string, Depth>;
}

interface AuditRow {
  id: number;
  actor: string;
  action: string;
  target: string | null;
  tenantId: string | null;
  details: unknown;
  at: string;
}

interface KeyRow {
  id: string;
  name: string;
  userId: string;
  roles: string[];
  createdAt: string;
  lastUsedAt: string | null;
  revokedAt: string | null;
}

interface UserRow {
  userId: string;
  roles: string[];
  memberSince: string;
}

interface BackupRow {
  id: string;
  createdAt: string;
  bytes: number;
  files: number;
}

const ROLE_NAMES = ['viewer', 'editor', 'tenant_admin', 'admin'];

/** One readiness check as text: `db ✓ 14 ms`, `queue ✗ connection refused`. */
function checkText(name: string, value: unknown): string {
  if (typeof value !== 'object' || value === null) return `${name}: ${String(value)}`;
  const c = value as { ok?: boolean; ms?: number; error?: string };
  return `${name} ${c.ok ? '✓' : '✗'}${c.ms !== undefined ? ` ${Math.round(c.ms)} ms` : ''}${c.error ? ` ${c.error}` : ''}`;
}

const errorText = (err: unknown) => (err instanceof ApiError ? `${err.code}: ${err.message}` : String(err));

function section(id: string, title: Key, body: HTMLElement, refresh: () => Promise<void>): HTMLElement {
  return h(
    'section',
    { class: 'card', id, 'aria-labelledby': `${id}-h` },
    h('div', { class: 'row' }, h('h2', { id: `${id}-h` }, t(title)), h('div', { class: 'grow' }), h('button', { type: 'button', 'aria-label': `${t('refresh')}: ${t(title)}`, onclick: () => void refresh() }, t('refresh'))),
    body,
  );
}

const table = (caption: string, head: string[], rows: HTMLElement[]) =>
  h('div', { class: 'table-wrap' }, h('table', null, h('caption', { class: 'sr-only' }, caption), h('thead', null, h('tr', null, head.map((x) => h('th', { scope: 'col' }, x)))), h('tbody', null, rows)));

function failed(box: HTMLElement, err: unknown): void {
  clear(box);
  box.append(h('p', { class: 'error', role: 'alert' }, errorText(err)));
}

const percent = (x: number) => `${Math.floor(x * 1000) / 10} %`;
const bytes = (n: number) => (n < 1024 ? `${n} B` : n < 1024 ** 2 ? `${(n / 1024).toFixed(1)} KB` : `${(n / 1024 ** 2).toFixed(1)} MB`);

/** Tells the page chrome (main.ts) that the mode changed, so the banner follows at once. */
const announceMode = (mode: MaintenanceMode) => window.dispatchEvent(new CustomEvent('ragmesh:maintenance-mode', { detail: mode }));

/**
 * Administration, by role: a tenant_admin reads the mode, the nodes, models and
 * coverage of its tenant, and manages its users, API keys and audit; an admin also
 * switches models and maintenance, replays dead letters and takes backups.
 */
export async function adminPage(ctx: PageContext): Promise<void> {
  const { root } = ctx;
  const isAdmin = ctx.me.roles.includes('admin');
  const note = h('p', { class: 'notice', role: 'status', id: 'admin-note' });
  const problem = h('p', { class: 'error', role: 'alert', id: 'admin-error' });

  /** Runs one admin action: its outcome in the status line (or the alert), then a reload of its section. */
  const run = (done: string | ((r: unknown) => string), action: () => Promise<unknown>, reload: () => Promise<void>) => async () => {
    note.textContent = '';
    problem.textContent = '';
    try {
      const result = await action();
      note.textContent = typeof done === 'string' ? done : done(result);
    } catch (err) {
      problem.textContent = errorText(err);
    }
    await reload();
  };

  // --- system status of every node ---
  const status = h('div');
  const loadStatus = async () => {
    try {
      const s = await api<{ ready: boolean; missing: string[]; services: Readiness[] }>('GET', 'status');
      clear(status);
      status.append(
        h('p', null, h('span', { class: `badge ${s.ready ? 'st-ready' : 'st-failed'}`, 'data-ready': String(s.ready) }, s.ready ? t('ready') : t('notReady')), s.missing.length ? ` ${t('missing')}: ${s.missing.join(', ')}` : ''),
        table(
          t('systemStatus'),
          [t('service'), t('node'), t('status'), t('checks')],
          s.services.map((r) =>
            h('tr', { 'data-service': r.service, 'data-node': r.nodeId }, h('td', null, r.service), h('td', { class: 'mono' }, r.nodeId), h('td', null, h('span', { class: `badge ${r.ready ? 'st-ready' : 'st-failed'}` }, r.ready ? t('ready') : t('notReady'))), h('td', { class: 'small' }, r.error ?? Object.entries(r.checks).map(([k, v]) => checkText(k, v)).join(' · '))),
          ),
        ),
      );
    } catch (err) {
      failed(status, err);
    }
  };

  // --- maintenance mode ---
  const maintenance = h('div');
  const loadMaintenance = async () => {
    try {
      const mode = await api<MaintenanceMode & { by?: string | null }>('GET', 'admin/maintenance');
      announceMode(mode);
      clear(maintenance);
      const reason = h('input', { id: 'maintenance-reason', 'aria-label': t('reason'), placeholder: t('reason'), maxlength: 500, value: mode.reason ?? '' });
      append(maintenance, [
        h('p', null, h('span', { class: `badge ${mode.enabled ? 'st-failed' : 'st-ready'}`, 'data-maintenance': String(mode.enabled) }, mode.enabled ? t('maintenanceOn') : t('maintenanceOff')), mode.since ? ` · ${formatDate(mode.since)}${mode.by ? ` · ${mode.by}` : ''}` : ''),
        isAdmin
          ? h(
              'div',
              { class: 'row wrap' },
              mode.enabled ? null : reason,
              h('button', {
                type: 'button',
                id: 'maintenance-toggle',
                onclick: run(t('done'), () => api('PUT', 'admin/maintenance', { enabled: !mode.enabled, ...(!mode.enabled && reason.value.trim() ? { reason: reason.value.trim() } : {}) }), loadMaintenance),
              }, mode.enabled ? t('maintenanceEnd') : t('maintenanceStart')),
            )
          : null,
      ]);
    } catch (err) {
      failed(maintenance, err);
    }
  };

  // --- dead letters (admin) ---
  const letters = h('div');
  const loadLetters = async () => {
    try {
      const d = await api<DeadLetters>('GET', 'admin/dead-letters');
      clear(letters);
      if (d.depths) letters.append(h('p', { class: 'small', 'data-depths': '' }, Object.entries(d.depths).map(([q, n]) => `${q}: ${n.ready} ${t('queued')} · ${n.dead} ${t('dead')}`).join(' — ')));
      if (!d.items.length) return void letters.append(h('p', { class: 'muted' }, t('noDeadLetters')));
      letters.append(
        table(
          t('deadLetters'),
          [t('job'), t('type'), t('attempt'), t('reason'), t('when'), ''],
          d.items.map((l) =>
            h(
              'tr',
              { 'data-job': l.jobId, 'data-dead-at': l.deadAt },
              h('td', { class: 'mono', title: l.jobId }, l.jobId.slice(0, 8)),
              h('td', null, l.type),
              h('td', null, String(l.attempt)),
              h('td', null, l.reason),
              h('td', { class: 'nowrap' }, formatDate(l.deadAt)),
              h('td', null, h('button', { type: 'button', 'data-action': 'replay', 'aria-label': `${t('replay')} ${l.jobId.slice(0, 8)}`, onclick: run(`${t('replayed')}: ${l.jobId}`, () => api('POST', `admin/dead-letters/${l.jobId}/replay`), loadLetters) }, t('replay'))),
            ),
          ),
        ),
      );
    } catch (err) {
      failed(letters, err);
    }
  };

  // --- models and flags: versions, switch, rollback, re-index with live progress, coverage ---
  const models = h('div');
  const reindexes = new Map<string, Reindex>();
  const reindexBox = h('div', { id: 'reindexes' });
  let following = false;
  const drawReindexes = () => {
    clear(reindexBox);
    if (!reindexes.size) return void reindexBox.append(h('p', { class: 'muted' }, t('noReindex')));
    reindexBox.append(
      table(
        t('reindex'),
        [t('alias'), t('version'), t('tenant'), t('status'), t('progress')],
        [...reindexes.values()].map((r) =>
          h(
            'tr',
            { 'data-reindex': `${r.alias}@${r.version}`, 'data-tenant': r.tenantId, 'data-state': r.state },
            h('td', null, r.alias),
            h('td', null, r.version),
            h('td', null, r.tenantId),
            h('td', null, r.state, r.error ? h('div', { class: 'error small' }, r.error) : null),
            h('td', { class: 'nowrap' }, h('progress', { max: 1, value: r.progress, 'aria-label': `${t('reindex')} ${r.alias} ${r.version} ${r.tenantId}` }), ` ${r.done}/${r.total}`),
          ),
        ),
      ),
    );
  };
  const loadModels = async () => {
    try {
      const s = await api<ModelStatus>('GET', 'admin/models/status');
      for (const r of s.reindexes) reindexes.set(`${r.alias}@${r.version}@${r.tenantId}`, r);
      clear(models);
      models.append(
        table(
          t('models'),
          [t('alias'), t('kind'), t('activeVersion'), t('previousVersion'), isAdmin ? t('version') : t('versions'), ''],
          s.models.map((m) => {
            const pick = h('select', { 'aria-label': `${t('version')} ${m.alias}`, 'data-versions': m.alias }, m.versions.map((v) => h('option', { value: v.version, selected: v.version === m.activeVersion }, `${v.version}${v.version === m.activeVersion ? ` (${t('active')})` : ''}`)));
            const alias = encodeURIComponent(m.alias);
            return h(
              'tr',
              { 'data-alias': m.alias, 'data-active': m.activeVersion ?? '' },
              h('td', null, m.alias),
              h('td', null, m.kind),
              h('td', { 'data-cell': 'active' }, m.activeVersion ?? '—'),
              h('td', null, m.previousVersion ?? '—'),
              h('td', null, isAdmin ? pick : m.versions.map((v) => v.version).join(', ')),
              h(
                'td',
                { class: 'actions' },
                isAdmin ? h('button', { type: 'button', 'aria-label': `${t('switch')} ${m.alias}`, onclick: () => void run((r) => `${t('switched')}: ${m.alias} ${(r as { from: string | null }).from ?? '—'} → ${(r as { to: string }).to}`, () => api('POST', `admin/models/${alias}/switch`, { version: pick.value }), loadModels)() }, t('switch')) : null,
                isAdmin && m.previousVersion ? h('button', { type: 'button', 'aria-label': `${t('rollback')} ${m.alias}`, onclick: run((r) => `${t('switched')}: ${m.alias} ${(r as { from: string | null }).from ?? '—'} → ${(r as { to: string }).to}`, () => api('POST', `admin/models/${alias}/rollback`), loadModels) }, t('rollback')) : null,
                isAdmin && m.kind === 'embed' ? h('button', { type: 'button', 'aria-label': `${t('reindex')} ${m.alias}`, onclick: () => void run(t('reindexStarted'), () => api('POST', `admin/models/${alias}/${encodeURIComponent(pick.value)}/reindex`), loadModels)() }, t('reindex')) : null,
              ),
            );
          }),
        ),
        h('h3', null, t('coverage')),
        s.coverage.length
          ? table(
              t('coverage'),
              [t('alias'), t('version'), t('role'), t('coverage')],
              s.coverage.map((c) =>
                h('tr', { 'data-coverage': `${c.alias}@${c.version}` }, h('td', null, c.alias), h('td', null, c.version), h('td', null, t(c.role)), h('td', { class: 'small' }, c.tenants.map((x) => `${x.tenantId}: ${percent(x.coverage)} (${x.vectors}/${x.chunks})`).join(' · ') || '—')),
              ),
            )
          : h('p', { class: 'muted' }, '—'),
        h('h3', null, t('reindex')),
        reindexBox,
      );
      drawReindexes();
      if (!following) {
        following = true;
        // Progress of every re-index batch, pushed by the maintenance service (a tenant_admin gets its own tenant's).
        follow('admin/models/events', ctx.signal, 'progress', (r) => {
          const view = r as Reindex;
          // How many updates came live (the test tells pushed progress from a reload by it).
          reindexBox.dataset.live = String(Number(reindexBox.dataset.live ?? 0) + 1);
          reindexes.set(`${view.alias}@${view.version}@${view.tenantId}`, view);
          drawReindexes();
        });
      }
    } catch (err) {
      failed(models, err);
    }
  };

  // --- backups (admin) ---
  const backups = h('div');
  const loadBackups = async () => {
    try {
      const b = await api<{ backups: BackupRow[]; schedule: string | null; keepDaily: number; keepWeekly: number }>('GET', 'admin/backups');
      clear(backups);
      append(backups, [
        h('p', { class: 'small' }, `${t('schedule')}: ${b.schedule ?? '—'} · ${t('keep')}: ${b.keepDaily} / ${b.keepWeekly}`),
        h('button', { type: 'button', id: 'backup-now', onclick: run((r) => `${t('backupTaken')}: ${(r as BackupRow).id}`, () => api('POST', 'admin/backups'), loadBackups) }, t('backupNow')),
        b.backups.length
          ? table(t('backups'), ['ID', t('when'), t('size'), t('files')], b.backups.map((x) => h('tr', { 'data-backup': x.id }, h('td', { class: 'mono' }, x.id), h('td', { class: 'nowrap' }, formatDate(x.createdAt)), h('td', null, bytes(x.bytes)), h('td', null, String(x.files)))))
          : h('p', { class: 'muted' }, t('noBackups')),
      ]);
    } catch (err) {
      failed(backups, err);
    }
  };

  // --- audit log (tenant admins), newest first, filtered, paged by its cursor ---
  const audit = h('div');
  const actorFilter = h('input', { id: 'audit-actor', 'aria-label': t('actor'), placeholder: t('actor') });
  const actionFilter = h('input', { id: 'audit-action', 'aria-label': t('action'), placeholder: `${t('action')} (api-key.create)` });
  const auditRows = h('tbody');
  const more = h('button', { type: 'button', id: 'audit-more', hidden: true }, t('more'));
  let cursor: number | null = null;
  const auditRow = (a: AuditRow) =>
    h('tr', { 'data-audit': a.action }, h('td', { class: 'nowrap' }, formatDate(a.at)), h('td', null, a.actor), h('td', null, a.action), h('td', { class: 'mono small' }, a.target ?? ''), h('td', { class: 'small' }, a.details ? JSON.stringify(a.details) : ''));
  const loadAudit = async (next = false) => {
    try {
      const q = new URLSearchParams({ limit: '50' });
      if (actorFilter.value.trim()) q.set('actor', actorFilter.value.trim());
      if (actionFilter.value.trim()) q.set('action', actionFilter.value.trim());
      if (next && cursor) q.set('before', String(cursor));
      const page = await api<{ items: AuditRow[]; next: number | null }>('GET', `audit?${q}`);
      if (!next) clear(auditRows);
      auditRows.append(...page.items.map(auditRow));
      if (!auditRows.children.length) auditRows.append(h('tr', null, h('td', { colspan: 5, class: 'muted' }, t('nothing'))));
      cursor = page.next;
      more.hidden = page.next === null;
    } catch (err) {
      failed(audit, err);
    }
  };
  more.addEventListener('click', () => void loadAudit(true));
  audit.append(
    h('form', { class: 'row wrap filters', onsubmit: (e: Event) => { e.preventDefault(); void loadAudit(); } }, actorFilter, actionFilter, h('button', { type: 'submit' }, t('filter'))),
    h('div', { class: 'table-wrap' }, h('table', null, h('caption', { class: 'sr-only' }, t('auditLog')), h('thead', null, h('tr', null, [t('when'), t('actor'), t('action'), t('target'), t('details')].map((x) => h('th', { scope: 'col' }, x)))), auditRows)),
    more,
  );

  // --- users and their roles (tenant admins) ---
  const users = h('div');
  let members: UserRow[] = [];
  const grantable = isAdmin ? ROLE_NAMES : ROLE_NAMES.filter((r) => r !== 'admin');
  const roleSelect = (label: string, current: string | undefined, id?: string) =>
    h('select', { 'aria-label': label, id }, grantable.map((r) => h('option', { value: r, selected: r === current }, r)));
  const loadUsers = async () => {
    try {
      members = (await api<{ items: UserRow[] }>('GET', 'users')).items;
      clear(users);
      users.append(
        table(
          t('users'),
          [t('user'), t('roles'), t('memberSince'), ''],
          members.map((u) => {
            const role = roleSelect(`${t('role')} ${u.userId}`, u.roles[0]);
            return h(
              'tr',
              { 'data-user': u.userId, 'data-roles': u.roles.join(',') },
              h('td', null, u.userId),
              h('td', null, u.roles.join(', '), ' ', role),
              h('td', { class: 'nowrap' }, formatDate(u.memberSince)),
              h('td', null, h('button', { type: 'button', 'aria-label': `${t('save')} ${u.userId}`, onclick: run(`${t('rolesSaved')}: ${u.userId}`, () => api('PUT', `users/${encodeURIComponent(u.userId)}/roles`, { roles: [role.value] }), async () => { await loadUsers(); await loadKeys(); }) }, t('save'))),
            );
          }),
        ),
      );
    } catch (err) {
      failed(users, err);
    }
  };

  // --- API keys (tenant admins): created for a user, shown once, revocable ---
  const keys = h('div');
  const shownKey = h('div', { id: 'new-key' });
  const loadKeys = async () => {
    try {
      const list = (await api<{ items: KeyRow[] }>('GET', 'api-keys')).items;
      clear(keys);
      const name = h('input', { id: 'key-name', 'aria-label': t('keyName'), placeholder: t('keyName'), required: true, maxlength: 100 });
      const owner = h('select', { id: 'key-user', 'aria-label': t('user') }, (members.length ? members.map((m) => m.userId) : [ctx.me.userId]).map((u) => h('option', { value: u, selected: u === ctx.me.userId }, u)));
      // A key holds some of its user's roles (the server refuses any other); the default is all of them.
      const role = h('select', { id: 'key-role', 'aria-label': t('role') });
      const offerRoles = () => {
        const held = members.find((m) => m.userId === owner.value)?.roles ?? ctx.me.roles;
        clear(role);
        append(role, [h('option', { value: '' }, `${t('usersRoles')} (${held.join(', ')})`), held.filter((r) => grantable.includes(r)).map((r) => h('option', { value: r }, r))]);
      };
      owner.addEventListener('change', offerRoles);
      offerRoles();
      append(keys, [
        h(
          'form',
          {
            class: 'row wrap',
            id: 'key-form',
            onsubmit: (e: Event) => {
              e.preventDefault();
              void run(
                (r) => {
                  const created = r as KeyRow & { key: string };
                  clear(shownKey);
                  shownKey.append(h('p', { class: 'notice' }, `${t('newKeyShown')} `, h('code', { class: 'mono', 'data-new-key': created.id }, created.key)));
                  return `${t('keyCreated')}: ${created.name}`;
                },
                () => api('POST', 'api-keys', { name: name.value.trim(), userId: owner.value, ...(role.value ? { roles: [role.value] } : {}) }),
                loadKeys,
              )();
            },
          },
          name,
          owner,
          role,
          h('button', { type: 'submit' }, t('create')),
        ),
        shownKey,
        list.length
          ? table(
              t('apiKeys'),
              [t('keyName'), t('user'), t('roles'), t('when'), t('lastUsed'), ''],
              list.map((k) =>
                h(
                  'tr',
                  { 'data-key': k.id, 'data-name': k.name, 'data-revoked': String(Boolean(k.revokedAt)) },
                  h('td', null, k.name),
                  h('td', null, k.userId),
                  h('td', null, k.roles.join(', ')),
                  h('td', { class: 'nowrap' }, formatDate(k.createdAt)),
                  h('td', { class: 'nowrap' }, k.lastUsedAt ? formatDate(k.lastUsedAt) : '—'),
                  h('td', null, k.revokedAt ? `${t('revoked')}: ${formatDate(k.revokedAt)}` : h('button', { type: 'button', 'aria-label': `${t('revoke')} ${k.name}`, onclick: run(`${t('revoked')}: ${k.name}`, () => api('DELETE', `api-keys/${k.id}`), loadKeys) }, t('revoke'))),
                ),
              ),
            )
          : h('p', { class: 'muted' }, t('noKeys')),
      ]);
    } catch (err) {
      failed(keys, err);
    }
  };

  append(root, [
    h('h1', null, t('admin')),
    note,
    problem,
    section('maintenance', 'maintenance', maintenance, loadMaintenance),
    section('system', 'systemStatus', status, loadStatus),
    isAdmin ? section('dead-letters', 'deadLetters', letters, loadLetters) : null,
    section('models', 'models', models, loadModels),
    isAdmin ? section('backups', 'backups', backups, loadBackups) : null,
    section('users', 'users', users, loadUsers),
    section('keys', 'apiKeys', keys, loadKeys),
    section('audit', 'auditLog', audit, () => loadAudit()),
  ]);
  // Users first: the key form offers them as owners.
  await Promise.all([loadMaintenance(), loadStatus(), isAdmin ? loadLetters() : null, loadModels(), isAdmin ? loadBackups() : null, loadUsers().then(loadKeys), loadAudit()]);
}
