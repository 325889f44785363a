// The dashboard's only way to the server: the admin API, with the token from session storage.

const TOKEN_KEY = 'orcid-webhooks.admin-token';

export const token = {
  get: () => sessionStorage.getItem(TOKEN_KEY),
  set: (value) => sessionStorage.setItem(TOKEN_KEY, value),
  clear: () => sessionStorage.removeItem(TOKEN_KEY),
};

/** An API failure with the message to show: the server's own words where it gave some. */
class ApiError extends Error {
  constructor(status, message, code = null) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** The useful part of an error body: ORCID format ("… Full validation error: <detail>") or OAuth. */
function errorMessage(status, body) {
  if (body && typeof body === 'object') {
    const dev = body['developer-message'];
    if (typeof dev === 'string') {
      const i = dev.indexOf('Full validation error: ');
      return i >= 0 ? dev.slice(i + 'Full validation error: '.length) : dev;
    }
    if (typeof body.error_description === 'string') return body.error_description;
    if (typeof body.message === 'string') return body.message;
  }
  return `The server answered ${status}`;
}

let onUnauthorized = () => undefined;

/** Called when the server rejects the token (expired session, changed token). */
export function setUnauthorizedHandler(fn) {
  onUnauthorized = fn;
}

/**
 * Calls the admin API. `auth` overrides the stored token (sign-in checks a candidate before
 * keeping it). Resolves to the JSON body (null for 204); rejects with an ApiError.
 */
export async function api(method, path, { body, auth } = {}) {
  const bearer = auth ?? token.get();
  const headers = { accept: 'application/json' };
  if (bearer) headers.authorization = `Bearer ${bearer}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  let res;
  try {
    res = await fetch(`/admin/api${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: 'no-store' });
  } catch (err) {
    throw new ApiError(0, `Cannot reach the server (${err.message}). Is it running?`);
  }
  const text = await res.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!res.ok) {
    const err = new ApiError(res.status, errorMessage(res.status, data), data?.['error-code'] ?? data?.error ?? null);
    if (res.status === 401 && auth === undefined) onUnauthorized(err);
    throw err;
  }
  return data;
}

export const q = (params) => {
  const s = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== undefined && v !== null && v !== '')).toString();
  return s ? `?${s}` : '';
};
