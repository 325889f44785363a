import { api } from '../api.js';
import { busy, clear, confirmDialog, emptyState, every, fmtDate, fmtMs, h, stateBadge, statusBadge, statusDetail, timeCell, toast } from '../ui.js';

const REFRESH_MS = 5000;

/** One label and value of the details grid (a div per pair keeps them together in the grid). */
function field(label, ...value) {
  return h('div', {}, h('dt', {}, label), h('dd', {}, value));
}

/** One side's headers as a name/value list; secrets arrive already redacted by the server. */
function headerList(title, headers, none) {
  return h('div', { class: 'headers' }, h('h3', {}, title),
    headers && Object.keys(headers).length
      ? h('dl', { class: 'header-list' }, Object.entries(headers).map(([k, v]) => h('div', {}, h('dt', { class: 'mono' }, k), h('dd', { class: 'mono' }, v))))
      : h('p', { class: 'muted small' }, none));
}

/** An attempt's row, and a row under it with its headers, shown by the row's Headers button. */
function attemptRows(a) {
  const detail = h('tr', { class: 'attempt-detail', hidden: true, dataset: { detailOf: String(a.id) } },
    h('td', { colspan: 7 }, h('div', { class: 'headers-grid' },
      headerList('Request headers', a.requestHeaders, 'Not recorded (attempts made before this version keep none).'),
      headerList('Response headers', a.responseHeaders, a.statusCode === null ? 'No answer.' : 'Not recorded.'))));
  const toggle = h('button', { type: 'button', class: 'btn btn-small', 'aria-expanded': 'false', onclick: () => {
    detail.hidden = !detail.hidden;
    toggle.setAttribute('aria-expanded', String(!detail.hidden));
  } }, 'Headers');
  return [attemptRow(a, toggle), detail];
}

function attemptRow(a, toggle) {
  return h('tr', { dataset: { attempt: String(a.id) } },
    h('td', {}, h('time', { datetime: a.at, title: a.at }, fmtDate(a.at))),
    h('td', { 'data-col': 'result' }, a.statusCode !== null ? statusBadge(a.statusCode) : h('span', { class: 'badge badge-bad' }, (a.error ?? 'error').split(':')[0]),
      a.error ? h('div', { class: 'muted small' }, a.error) : null),
    h('td', { class: 'num nowrap col-wide' }, fmtMs(a.durationMs)),
    h('td', { class: 'num nowrap col-wide' }, fmtMs(a.latencyMs)),
    h('td', { class: 'mono small col-wide' }, a.notificationId),
    h('td', { class: 'mono small snippet', title: a.responseSnippet ?? '' }, a.responseSnippet ?? h('span', { class: 'muted' }, '—')),
    h('td', { class: 'actions' }, toggle),
  );
}

/** What an unknown (deleted, mistyped) webhook id shows instead of an empty page. */
function notFound(id, err) {
  const search = h('input', { type: 'search', class: 'input', placeholder: 'ORCID iD, callback URL or client id', 'aria-label': 'Search webhooks' });
  return [
    h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' }, h('a', { href: '#/webhooks' }, 'Webhooks'), h('span', { 'aria-hidden': 'true' }, ' / '), h('span', {}, `#${id}`)),
    h('section', { class: 'card not-found', 'data-testid': 'webhook-not-found' },
      h('h1', {}, `No webhook #${id}`),
      h('p', {}, err.status === 404
        ? 'There is no webhook with this id. It may have been deleted (by its client, or here), or the link is wrong.'
        : `This is not a webhook id (${err.message}).`),
      h('form', { class: 'toolbar', onsubmit: (e) => { e.preventDefault(); location.hash = `#/webhooks?search=${encodeURIComponent(search.value.trim())}`; } },
        search, h('button', { type: 'submit', class: 'btn btn-primary' }, 'Search webhooks')),
      h('p', {}, h('a', { href: '#/webhooks' }, '← All webhooks'))),
  ];
}

export async function render(view, params) {
  const id = params.id;
  let current = null;
  let gone = false;
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
        h('thead', {}, h('tr', {}, h('th', {}, 'When'), h('th', {}, 'Result'), h('th', { class: 'num col-wide' }, 'Duration'), h('th', { class: 'num col-wide' }, 'Latency'), h('th', { class: 'col-wide' }, 'Notification'), h('th', { class: 'snippet' }, 'Response'), h('th', {}, ''))),
        tbody)),
      attemptsStatus),
  );

  async function load() {
    if (gone) return 'gone';
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
        field('Last attempt', h('span', { 'data-testid': 'last-attempt' }, timeCell(w.lastAttempt))),
        field('Last status', statusBadge(w.lastStatus), statusDetail(w.lastStatus)),
        field('Last success', h('span', { 'data-testid': 'last-success' }, timeCell(w.lastSuccess))),
        field('Last failure', timeCell(w.lastFailed)),
        field('Failed tries', String(w.failedAttempts)),
        field('Owes a change since', timeCell(w.pendingSince)),
        field('Next try', w.due ? timeCell(w.due) : h('span', { class: 'muted' }, w.enabled ? 'nothing owed' : 'disabled')),
      );
      // Rows whose headers are open stay open across refreshes.
      const open = new Set([...tbody.querySelectorAll('tr.attempt-detail:not([hidden])')].map((tr) => tr.dataset.detailOf));
      clear(tbody, r.attempts.map(attemptRows));
      for (const tr of tbody.querySelectorAll('tr.attempt-detail')) {
        if (open.has(tr.dataset.detailOf)) {
          tr.hidden = false;
          tr.previousElementSibling?.querySelector('[aria-expanded]')?.setAttribute('aria-expanded', 'true');
        }
      }
      attemptsCount.textContent = r.attempts.length ? `${r.attempts.length} most recent, newest first` : '';
      clear(attemptsStatus, r.attempts.length ? null : emptyState('No attempts yet', 'A callback is attempted when the record changes, or with “Replay now”.'));
    } catch (err) {
      // 404: no such webhook; 400: not a webhook id at all. Either way there is nothing to refresh.
      if (err.status === 404 || err.status === 400) {
        gone = true;
        clear(view, notFound(id, err));
        return 'gone';
      }
      clear(error, h('div', { class: 'alert alert-error', role: 'alert' }, `Could not load webhook #${id}: ${err.message}`));
    }
    return 'ok';
  }

  const stop = every(REFRESH_MS, load);
  return stop;
}
