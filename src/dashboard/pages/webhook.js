import { api } from '../api.js';
import { busy, clear, confirmDialog, emptyState, every, fmtDate, fmtMs, h, stateBadge, statusBadge, timeCell, toast } from '../ui.js';

const REFRESH_MS = 5000;

/** One label and value of the details grid (a div per pair keeps them together in the grid). */
function field(label, ...value) {
  return h('div', {}, h('dt', {}, label), h('dd', {}, value));
}

function attemptRow(a) {
  return h('tr', { dataset: { attempt: String(a.id) } },
    h('td', { class: 'nowrap' }, h('time', { datetime: a.at, title: a.at }, fmtDate(a.at))),
    h('td', { 'data-col': 'result' }, a.statusCode !== null ? statusBadge(a.statusCode) : h('span', { class: 'badge badge-bad' }, (a.error ?? 'error').split(':')[0]),
      a.error ? h('div', { class: 'muted small' }, a.error) : null),
    h('td', { class: 'num nowrap' }, fmtMs(a.durationMs)),
    h('td', { class: 'num nowrap' }, fmtMs(a.latencyMs)),
    h('td', { class: 'mono small' }, a.notificationId),
    h('td', { class: 'mono small snippet', title: a.responseSnippet ?? '' }, a.responseSnippet ?? h('span', { class: 'muted' }, '—')),
  );
}

export async function render(view, params) {
  const id = params.id;
  let current = null;
  const header = h('header', { class: 'page-header' });
  const details = h('dl', { class: 'details' });
  const notice = h('div');
  const error = h('div');
  const tbody = h('tbody');
  const attemptsStatus = h('div', { class: 'table-status' });
  const attemptsCount = h('span', { class: 'muted small' });

  /** Re-reads the webhook for a few seconds, until a new attempt shows, without waiting for the timer. */
  async function follow(attemptsBefore) {
    for (let i = 0; i < 20; i++) {
      await new Promise((r) => setTimeout(r, 250));
      if ((await load()) !== 'ok' || (current?.attempts.length ?? 0) > attemptsBefore) return;
    }
  }

  const enable = h('button', { type: 'button', class: 'btn btn-primary', hidden: true, onclick: () => busy(enable, 'Enabling…', async () => {
    const before = current?.attempts.length ?? 0;
    const r = await api('POST', `/webhooks/${id}/enable`);
    toast(r.reenabled ? `Webhook #${id} re-enabled${r.webhook.due ? ': the callback it owed is due now' : ''}` : `Webhook #${id} was already enabled`);
    await load();
    if (r.webhook.due) await follow(before);
  }) }, 'Re-enable');
  const replay = h('button', { type: 'button', class: 'btn', title: 'Send a callback now, even if nothing changed', onclick: () => busy(replay, 'Replaying…', async () => {
    const before = current?.attempts.length ?? 0;
    await api('POST', `/webhooks/${id}/replay`);
    toast(`Replay of webhook #${id} queued: a callback is on its way`);
    await follow(before);
  }) }, 'Replay now');
  const del = h('button', { type: 'button', class: 'btn btn-danger-outline', onclick: async () => {
    const ok = await confirmDialog({
      title: `Delete webhook #${id}?`,
      message: `${current?.webhook.url ?? ''} will get no more callbacks for ${current?.webhook.orcid ?? 'this record'}, and its attempts history is deleted. The client can register it again.`,
      confirm: 'Delete webhook',
    });
    if (!ok) return;
    await busy(del, 'Deleting…', async () => {
      await api('DELETE', `/webhooks/${id}`);
      toast(`Webhook #${id} deleted`);
      location.hash = '#/webhooks';
    });
  } }, 'Delete');

  view.append(
    h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' }, h('a', { href: '#/webhooks' }, 'Webhooks'), h('span', { 'aria-hidden': 'true' }, ' / '), h('span', {}, `#${id}`)),
    header, error, notice,
    h('section', { class: 'card' }, details),
    h('section', { class: 'card card-flush' },
      h('div', { class: 'card-head card-head-pad' }, h('h2', {}, 'Attempts'), attemptsCount),
      h('div', { class: 'table-wrap' }, h('table', { class: 'table', 'data-testid': 'attempts' },
        h('thead', {}, h('tr', {}, h('th', {}, 'When'), h('th', {}, 'Result'), h('th', { class: 'num' }, 'Duration'), h('th', { class: 'num' }, 'Latency'), h('th', {}, 'Notification'), h('th', {}, 'Response'))),
        tbody)),
      attemptsStatus),
  );

  async function load() {
    try {
      const r = await api('GET', `/webhooks/${id}`);
      current = r;
      clear(error);
      const w = r.webhook;
      clear(header,
        h('div', { class: 'title-block' },
          h('h1', { class: 'url-title mono' }, w.url),
          h('p', { class: 'muted' }, stateBadge(w.state), ' ', h('span', { class: 'mono' }, w.orcid), ' · ', w.client.name ?? w.client.id, ' ', h('span', { class: 'mono small' }, `(${w.client.id})`))),
        h('div', { class: 'page-actions' }, enable, replay, del));
      enable.hidden = w.enabled;
      clear(notice, w.state === 'disabled'
        ? h('div', { class: 'alert alert-warn' }, `Disabled ${w.disabled ? `on ${fmtDate(w.disabled)}` : ''}: ${w.disabledReason ?? 'no reason recorded'}. Re-enable it to resume callbacks${w.pendingSince ? '; the change it still owes will be sent at once' : ''}.`)
        : w.state === 'failing'
          ? h('div', { class: 'alert alert-warn' }, `The last ${w.failedAttempts} ${w.failedAttempts === 1 ? 'try' : 'tries'} failed; next try ${w.due ? `at ${fmtDate(w.due)}` : 'soon'}.`)
          : null);
      clear(details,
        field('ORCID iD', h('span', { class: 'mono' }, w.orcid)),
        field('Client', w.client.name ?? '—', ' ', h('a', { class: 'mono small', href: `#/webhooks?client=${encodeURIComponent(w.client.id)}` }, w.client.id)),
        field('Host', h('span', { class: 'mono' }, w.host)),
        field('Registered', timeCell(w.created)),
        field('Last sent', h('span', { 'data-testid': 'last-sent' }, timeCell(w.lastSent))),
        field('Last status', statusBadge(w.lastStatus)),
        field('Last failure', timeCell(w.lastFailed)),
        field('Failed tries', String(w.failedAttempts)),
        field('Owes a change since', timeCell(w.pendingSince)),
        field('Next try', w.due ? timeCell(w.due) : h('span', { class: 'muted' }, w.enabled ? 'nothing owed' : 'disabled')),
      );
      clear(tbody, r.attempts.map(attemptRow));
      attemptsCount.textContent = r.attempts.length ? `${r.attempts.length} most recent, newest first` : '';
      clear(attemptsStatus, r.attempts.length ? null : emptyState('No attempts yet', 'A callback is attempted when the record changes, or with “Replay now”.'));
    } catch (err) {
      clear(error, h('div', { class: 'alert alert-error', role: 'alert' }, err.status === 404 ? err.message : `Could not load webhook #${id}: ${err.message}`));
      if (err.status === 404) {
        clear(header);
        clear(details);
        for (const el of [tbody, attemptsStatus]) clear(el);
        return 'gone';
      }
    }
    return 'ok';
  }

  const stop = every(REFRESH_MS, load);
  return stop;
}
