/**
 * A browsable page for /openapi.json, self-contained (inline CSS and script, no network): operations
 * grouped by tag, with parameters, request bodies and responses.
 */
export function docsPage(): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>orcid-webhooks API</title>
<style>
  :root { --fg:#1d2329; --muted:#5d6b78; --line:#dde3e8; --bg:#f6f8fa; --accent:#a6ce39; --accent-dark:#5a7a00; }
  * { box-sizing: border-box; }
  body { margin:0; font:15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color:var(--fg); background:#fff; }
  header { padding:24px 32px; border-bottom:1px solid var(--line); background:var(--bg); }
  header h1 { margin:0 0 4px; font-size:22px; }
  header p { margin:0; color:var(--muted); max-width:900px; }
  nav { position:sticky; top:0; background:#fff; border-bottom:1px solid var(--line); padding:8px 32px; display:flex; gap:16px; flex-wrap:wrap; z-index:1; }
  nav a { color:var(--accent-dark); text-decoration:none; font-weight:600; }
  main { padding:8px 32px 64px; max-width:1100px; }
  h2 { margin:32px 0 12px; font-size:19px; border-bottom:2px solid var(--accent); padding-bottom:4px; }
  details { border:1px solid var(--line); border-radius:8px; margin:10px 0; background:#fff; }
  /* Wraps: on a narrow screen the path takes a line of its own instead of being squeezed to one
     character per line beside the summary. */
  summary { cursor:pointer; padding:10px 14px; display:flex; flex-wrap:wrap; gap:6px 12px; align-items:baseline; list-style:none; }
  summary::-webkit-details-marker { display:none; }
  .method { font:700 12px/1 ui-monospace, monospace; padding:5px 8px; border-radius:4px; color:#fff; min-width:64px; text-align:center; }
  .get { background:#2f7fc1; } .put { background:#b07a00; } .post { background:#2e8b57; } .delete { background:#c0392b; } .patch { background:#7d4cad; }
  .path { font:600 14px ui-monospace, monospace; min-width:0; overflow-wrap:anywhere; }
  .summary { color:var(--muted); flex:1 1 240px; min-width:0; }
  .body { padding:4px 16px 14px; border-top:1px solid var(--line); }
  /* Fixed layout: a schema's long lines scroll inside their pre instead of widening the page. */
  table { border-collapse:collapse; width:100%; margin:6px 0 12px; font-size:14px; table-layout:fixed; }
  th, td { text-align:left; border-bottom:1px solid var(--line); padding:6px 8px; vertical-align:top; overflow-wrap:anywhere; }
  .responses td:first-child, .responses th:first-child { width:64px; }
  .params td:nth-child(2), .params th:nth-child(2) { width:30%; }
  th { color:var(--muted); font-weight:600; }
  pre { background:var(--bg); border:1px solid var(--line); border-radius:6px; padding:10px; overflow:auto; font-size:12.5px; max-height:360px; }
  code { font-family:ui-monospace, monospace; }
  .auth { font-size:12px; color:var(--muted); margin-left:auto; white-space:nowrap; }
  @media (max-width: 640px) {
    header { padding:16px; }
    nav { padding:8px 16px; }
    main { padding:8px 12px 48px; }
    summary { padding:10px; }
    .body { padding:4px 10px 12px; }
    .auth { margin-left:0; }
  }
  #error { color:#c0392b; }
</style>
</head>
<body>
<header>
  <h1>orcid-webhooks API</h1>
  <p>ORCID-compatible webhook registration, the client read endpoints, the admin API and the operational endpoints.
  Errors use ORCID's format. The machine-readable document is at <a href="/openapi.json"><code>/openapi.json</code></a>.</p>
</header>
<nav id="nav"></nav>
<main id="main"><p>Loading…</p><p id="error"></p></main>
<script>
const esc = (s) => String(s ?? '').replace(/[&<>"']/g, (c) => ({ '&':'&amp;', '<':'&lt;', '>':'&gt;', '"':'&quot;', "'":'&#39;' })[c]);
const auth = (op) => !op.security || op.security.length === 0 ? 'no auth' : op.security[0].adminToken ? 'admin token' : 'bearer /webhook token';
// Schemas shared under components are shown where they are used.
const resolve = (doc, s) => s && s.$ref ? doc.components.schemas[s.$ref.split('/').pop()] : s;
function render(doc) {
  const byTag = new Map();
  for (const [path, ops] of Object.entries(doc.paths)) for (const [method, op] of Object.entries(ops)) {
    const tag = (op.tags && op.tags[0]) || 'Other';
    if (!byTag.has(tag)) byTag.set(tag, []);
    byTag.get(tag).push({ path, method, op });
  }
  const order = ['ORCID API', 'Client', 'Admin', 'Operations'];
  const tags = [...byTag.keys()].sort((a, b) => (order.indexOf(a) + 99) % 99 - (order.indexOf(b) + 99) % 99);
  document.getElementById('nav').innerHTML = tags.map((t) => '<a href="#' + esc(t.replace(/\\s/g, '-')) + '">' + esc(t) + '</a>').join('');
  document.getElementById('main').innerHTML = tags.map((t) => '<h2 id="' + esc(t.replace(/\\s/g, '-')) + '">' + esc(t) + '</h2>' + byTag.get(t).map(({ path, method, op }) => {
    const params = (op.parameters || []).map((p) => '<tr><td><code>' + esc(p.name) + '</code></td><td>' + esc(p.in) + (p.required ? ', required' : '') + '</td><td>' + esc(p.description || (p.schema && (p.schema.description || p.schema.type || (p.schema.enum || []).join(' | '))) || '') + '</td></tr>').join('');
    const headers = (r) => Object.entries(r.headers || {}).map(([name, h]) => '<p>Header <code>' + esc(name) + '</code>: ' + esc(h.description) + '</p>').join('');
    // An answer in several media types (errors: JSON or XML) has one schema: the types are named, the schema shown once.
    const shown = (r) => { const types = Object.keys(r.content); return '<p>' + types.map((t) => '<code>' + esc(t) + '</code>').join(', ') + '</p><pre>' + esc(JSON.stringify(resolve(doc, r.content[types[0]].schema), null, 2)) + '</pre>'; };
    const body = op.requestBody ? '<p><b>Request body</b></p>' + shown(op.requestBody) : '';
    const responses = Object.entries(op.responses || {}).map(([code, r]) => '<tr><td><b>' + esc(code) + '</b></td><td>' + esc(r.description) + headers(r) + (r.content ? shown(r) : '') + '</td></tr>').join('');
    return '<details><summary><span class="method ' + esc(method) + '">' + esc(method.toUpperCase()) + '</span><span class="path">' + esc(path) + '</span><span class="summary">' + esc(op.summary) + '</span><span class="auth">' + esc(auth(op)) + '</span></summary><div class="body">'
      + (op.description ? '<p>' + esc(op.description) + '</p>' : '')
      + (params ? '<p><b>Parameters</b></p><table class="params"><tr><th>name</th><th>in</th><th>description</th></tr>' + params + '</table>' : '')
      + body + '<p><b>Responses</b></p><table class="responses">' + responses + '</table></div></details>';
  }).join('')).join('');
}
fetch('/openapi.json').then((r) => r.json()).then(render).catch((e) => { document.getElementById('error').textContent = 'Could not load /openapi.json: ' + e.message; });
</script>
</body>
</html>
`;
}
