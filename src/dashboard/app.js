// Entry point: sign-in, the hash router (#/page/...), and page life cycles.
import { api, setUnauthorizedHandler, token } from './api.js';
import { clear, errorBox } from './ui.js';
import * as overview from './pages/overview.js';
import * as webhooks from './pages/webhooks.js';
import * as webhook from './pages/webhook.js';
import * as clients from './pages/clients.js';
import * as records from './pages/records.js';
import * as upstream from './pages/upstream.js';

const $ = (id) => document.getElementById(id);

/** Each route: a page module with render(view, params) returning an optional cleanup function. */
function route(hash) {
  const [path, query = ''] = hash.replace(/^#/, '').split('?');
  const parts = path.split('/').filter(Boolean);
  const params = Object.fromEntries(new URLSearchParams(query));
  if (parts[0] === 'webhooks' && parts[1]) return { nav: 'webhooks', page: webhook, params: { ...params, id: parts[1] } };
  if (parts[0] === 'webhooks') return { nav: 'webhooks', page: webhooks, params };
  if (parts[0] === 'clients') return { nav: 'clients', page: clients, params };
  if (parts[0] === 'records') return { nav: 'records', page: records, params };
  if (parts[0] === 'upstream') return { nav: 'upstream', page: upstream, params };
  return { nav: 'overview', page: overview, params };
}

let cleanup = null;
/** Counts the pages shown: a render that ends after another page was shown (or sign-out) is stale. */
let shown = 0;

async function show() {
  if (!token.get()) return showSignIn();
  const { nav, page, params } = route(location.hash);
  for (const a of document.querySelectorAll('[data-nav]')) {
    if (a.dataset.nav === nav) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  cleanup?.();
  cleanup = null;
  const mine = ++shown;
  const view = clear($('view'));
  try {
    const stop = (await page.render(view, params)) ?? null;
    // Left while it loaded (a slow server): stop its timers now, and keep the cleanup of the page
    // shown since, which this one used to overwrite, so that page's auto-refresh ran on forever.
    if (mine !== shown) stop?.();
    else cleanup = stop;
  } catch (err) {
    if (mine === shown) clear(view, errorBox(err));
  }
}

function showSignIn(message) {
  cleanup?.();
  cleanup = null;
  shown++;
  clear($('view'));
  $('shell').hidden = true;
  $('signin').hidden = false;
  const error = $('signin-error');
  error.hidden = !message;
  error.textContent = message ?? '';
  $('signin-token').focus();
}

function showShell() {
  $('signin').hidden = true;
  $('shell').hidden = false;
}

async function signIn(event) {
  event.preventDefault();
  const input = $('signin-token');
  const candidate = input.value.trim();
  const error = $('signin-error');
  const submit = $('signin-submit');
  error.hidden = true;
  if (!candidate) return;
  submit.disabled = true;
  submit.textContent = 'Checking…';
  try {
    // The token is kept only once the server accepts it.
    await api('GET', '/overview', { auth: candidate });
    token.set(candidate);
    input.value = '';
    showShell();
    await show();
  } catch (err) {
    error.textContent = err.status === 401
      ? 'That admin token was not accepted. Use the server\'s --admin-token (ORCID_WEBHOOKS_ADMIN_TOKEN) value, or the content of the admin-token file in its data directory.'
      : `Could not sign in: ${err.message}`;
    error.hidden = false;
    input.select();
  } finally {
    submit.disabled = false;
    submit.textContent = 'Sign in';
  }
}

function signOut(message) {
  token.clear();
  showSignIn(message);
}

setUnauthorizedHandler((err) => signOut(`Signed out: the server no longer accepts this admin token (${err.message})`));
$('signin-form').addEventListener('submit', signIn);
$('signout').addEventListener('click', () => signOut());
window.addEventListener('hashchange', () => void show());

if (token.get()) {
  showShell();
  void show();
} else {
  showSignIn();
}
