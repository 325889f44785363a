import { api } from '../api.js';
import { busy, clear, confirmDialog, copyButton, emptyState, h, pageHeader, timeCell, toast } from '../ui.js';

export async function render(view) {
  const tbody = h('tbody');
  const status = h('div', { class: 'table-status' });
  const error = h('div');
  const secretPanel = h('div');
  const formError = h('div');

  const name = h('input', { class: 'input', id: 'client-name', name: 'name', required: true, maxlength: 200, placeholder: 'e.g. University of Example CRIS', autocomplete: 'off' });
  const premium = h('input', { type: 'checkbox', id: 'client-premium', name: 'premium', checked: true });
  const create = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Create client');
  const form = h('form', { class: 'inline-form', novalidate: true },
    h('div', { class: 'field grow' }, h('label', { for: 'client-name' }, 'Name'), name),
    h('label', { class: 'check', for: 'client-premium' }, premium, h('span', {}, 'Premium member', h('span', { class: 'muted small block' }, 'may get /webhook tokens'))),
    create);

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clear(formError);
    const button = create;
    button.disabled = true;
    try {
      const r = await api('POST', '/clients', { body: { name: name.value, premium: premium.checked } });
      name.value = '';
      showSecret(r);
      toast(`Client “${r.client.name}” created`);
      await load();
    } catch (err) {
      clear(formError, h('div', { class: 'alert alert-error', role: 'alert' }, `Could not create the client: ${err.message}`));
    } finally {
      button.disabled = false;
    }
  });

  function showSecret({ client, secret }) {
    clear(secretPanel, h('section', { class: 'card secret-card', 'data-testid': 'client-secret' },
      h('div', { class: 'card-head' }, h('h2', {}, `Credentials of “${client.name}”`),
        h('button', { type: 'button', class: 'btn btn-small', onclick: () => clear(secretPanel) }, 'Done, I saved them')),
      h('p', { class: 'alert alert-warn' }, 'Copy the client secret now. It is stored only as a hash and cannot be shown again; if it is lost, create a new client and revoke this one.'),
      h('dl', { class: 'details details-wide' },
        h('dt', {}, 'Client id'), h('dd', {}, h('code', { class: 'secret' }, client.id), ' ', copyButton(client.id)),
        h('dt', {}, 'Client secret'), h('dd', {}, h('code', { class: 'secret', 'data-testid': 'secret-value' }, secret), ' ', copyButton(secret))),
      h('p', { class: 'muted small' }, 'Get a token: ', h('code', {}, 'POST /oauth/token'), ' with client_id, client_secret, grant_type=client_credentials and scope=/webhook.')));
  }

  function row(c) {
    const revoke = h('button', { type: 'button', class: 'btn btn-small btn-danger-outline', onclick: async () => {
      const ok = await confirmDialog({
        title: `Revoke “${c.name}”?`,
        message: `Its tokens stop working at once and it cannot get new ones (client id ${c.id}). Its webhooks stay registered. This cannot be undone.`,
        confirm: 'Revoke client',
      });
      if (!ok) return;
      await busy(revoke, 'Revoking…', async () => {
        await api('POST', `/clients/${encodeURIComponent(c.id)}/revoke`);
        toast(`Client “${c.name}” revoked`);
        await load();
      });
    } }, 'Revoke');
    return h('tr', { dataset: { client: c.id }, class: c.revoked ? 'row-muted' : '' },
      h('td', { class: 'wrap-anywhere' }, h('strong', {}, c.name), h('span', { class: 'mono small muted block' }, c.id)),
      h('td', { class: 'col-wide' }, c.premium ? h('span', { class: 'badge badge-premium' }, 'Premium') : h('span', { class: 'badge' }, 'Public')),
      h('td', { class: 'nowrap col-wide' }, timeCell(c.created)),
      h('td', {}, c.revoked ? h('span', {}, h('span', { class: 'badge badge-disabled' }, 'Revoked'), ' ', h('span', { class: 'nowrap' }, timeCell(c.revoked))) : h('span', { class: 'badge badge-ok' }, 'Active')),
      h('td', { class: 'actions' },
        h('a', { class: 'btn btn-small', href: `#/webhooks?client=${encodeURIComponent(c.id)}` }, 'Webhooks'),
        c.revoked ? null : revoke),
    );
  }

  view.append(
    pageHeader('Clients', 'API clients that register webhooks. Secrets are shown once, at creation.'),
    h('section', { class: 'card' }, h('h2', {}, 'New client'), form, formError),
    secretPanel,
    error,
    h('section', { class: 'card card-flush' },
      h('div', { class: 'table-wrap' }, h('table', { class: 'table' },
        h('thead', {}, h('tr', {}, h('th', {}, 'Name · client id'), h('th', { class: 'col-wide' }, 'Type'), h('th', { class: 'col-wide' }, 'Created'), h('th', {}, 'Status'), h('th', {}, ''))),
        tbody)),
      status),
  );

  async function load() {
    try {
      const { clients } = await api('GET', '/clients');
      clear(error);
      // Active first, newest first.
      const sorted = [...clients].sort((a, b) => Number(Boolean(a.revoked)) - Number(Boolean(b.revoked)) || b.created.localeCompare(a.created));
      clear(tbody, sorted.map(row));
      clear(status, clients.length ? null : emptyState('No clients yet', 'Create one above, or with “orcid-webhooks clients create”.'));
    } catch (err) {
      clear(error, h('div', { class: 'alert alert-error', role: 'alert' }, `Could not load clients: ${err.message}`));
    }
  }
  await load();
}
