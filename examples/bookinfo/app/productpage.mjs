/**
 * Bookinfo `productpage`: the HTML product page. It calls `details` and `reviews` by name through its sidecar
 * (HTTP_PROXY → `http://details:9080/details/0`, `http://reviews:9080/reviews/0`), forwarding the trace headers
 * and the user (`end-user` header and the `user` cookie) so that per-user routing (the `jason` task) works.
 *
 *   GET /, /productpage        the page: book details, reviews, and which reviews version answered
 *   GET /login?user=NAME       signs in (cookie `user`), back to the page; GET /logout signs out
 *   GET /api/v1/products                 the product list (JSON)
 *   GET /api/v1/products/<id>            details (JSON, from details)
 *   GET /api/v1/products/<id>/reviews    reviews (JSON, from reviews)
 *   GET /health
 *
 * A failing upstream does not fail the page: it shows "currently unavailable" with the reason, as Bookinfo does.
 */
import { callService, escapeHtml, forwardHeaders, instanceName, sendHtml, sendJson, serve } from './lib.mjs';

const me = instanceName('productpage');
const DETAILS_URL = process.env.DETAILS_URL ?? 'http://details:9080';
const REVIEWS_URL = process.env.REVIEWS_URL ?? 'http://reviews:9080';
const TIMEOUT_MS = 3000;

const PRODUCTS = [
  {
    id: 0,
    title: 'The Comedy of Errors',
    descriptionHtml:
      '<a href="https://en.wikipedia.org/wiki/The_Comedy_of_Errors">Wikipedia Summary</a>: The Comedy of Errors is one of <b>William Shakespeare\'s</b> early plays. It is his shortest and one of his most farcical comedies, with a major part of the humour coming from slapstick and mistaken identity, in addition to puns and word play.',
  },
];

function userOf(req) {
  const m = /(?:^|;\s*)user=([^;]*)/.exec(req.headers.cookie ?? '');
  if (m) {
    try {
      return decodeURIComponent(m[1]);
    } catch {
      return m[1];
    }
  }
  const h = req.headers['end-user'];
  return typeof h === 'string' && h !== '' ? h : undefined;
}

function upstreamHeaders(req) {
  const h = forwardHeaders(req);
  const user = userOf(req);
  if (user) h['end-user'] = user;
  return h;
}

/** `{ ok: true, value }` or `{ ok: false, error }` — never throws. */
async function fetchJson(url, headers) {
  try {
    const r = await callService(url, headers, TIMEOUT_MS);
    if (r.status === 200 && r.json !== undefined) return { ok: true, value: r.json };
    const flags = r.headers['x-weft-response-flags'];
    return { ok: false, error: `answered ${r.status}${flags ? ` (${flags})` : ''}${r.body ? `: ${r.body.slice(0, 160)}` : ''}` };
  } catch (e) {
    return { ok: false, error: e.message };
  }
}

const getDetails = (id, req) => fetchJson(`${DETAILS_URL}/details/${id}`, upstreamHeaders(req));
const getReviews = (id, req) => fetchJson(`${REVIEWS_URL}/reviews/${id}`, upstreamHeaders(req));

function stars(rating) {
  if (!rating) return '';
  if (rating.error) return `<span class="rating-error">Ratings service is currently unavailable (${escapeHtml(rating.error)})</span>`;
  const n = Math.max(0, Math.min(5, Number(rating.stars) || 0));
  const color = rating.color === 'red' ? 'red' : 'black';
  return `<span class="stars" style="color:${color}" data-stars="${n}" data-color="${color}">${'★'.repeat(n)}${'☆'.repeat(5 - n)}</span>`;
}

function detailsHtml(d) {
  if (!d.ok) return `<p class="error" id="details-error">Sorry, product details are currently unavailable for this book. (${escapeHtml(d.error)})</p>`;
  const v = d.value;
  const stock = v.stock?.error
    ? `<span class="error">stock unavailable (${escapeHtml(v.stock.error)})</span>`
    : `${escapeHtml(v.stock?.available)} in stock at ${escapeHtml(v.stock?.warehouse)} <small>(gRPC ${escapeHtml(v.stock?.instance)})</small>`;
  const rows = [
    ['Type', v.type],
    ['Pages', v.pages],
    ['Publisher', v.publisher],
    ['Language', v.language],
    ['ISBN-10', v['ISBN-10']],
    ['ISBN-13', v['ISBN-13']],
  ]
    .map(([k, val]) => `<tr><th>${k}</th><td>${escapeHtml(val)}</td></tr>`)
    .join('');
  return `<table id="details" data-instance="${escapeHtml(v.instance)}">${rows}<tr><th>Stock</th><td id="stock">${stock}</td></tr></table>`;
}

function reviewsHtml(r) {
  if (!r.ok) return `<p class="error" id="reviews-error">Sorry, product reviews are currently unavailable for this book. (${escapeHtml(r.error)})</p>`;
  const v = r.value;
  const items = (v.reviews ?? [])
    .map((rev) => `<blockquote><p>${escapeHtml(rev.text)}</p><small>${escapeHtml(rev.reviewer)}</small> ${stars(rev.rating)}</blockquote>`)
    .join('');
  return `<div id="reviews" data-version="${escapeHtml(v.version)}">${items}<p class="served">Reviews served by <b id="reviews-version">reviews ${escapeHtml(v.version)}</b> (${escapeHtml(v.instance)})</p></div>`;
}

function page(product, user, d, r) {
  const sign = user
    ? `Signed in as <b id="user">${escapeHtml(user)}</b> · <a href="/logout">sign out</a>`
    : `<a href="/login?user=jason">Sign in as jason</a>`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Bookinfo — ${escapeHtml(product.title)}</title>
<style>
body{font-family:system-ui,sans-serif;margin:0;color:#222}
header{background:#24292f;color:#fff;padding:.6em 1.2em;display:flex;justify-content:space-between}
header a{color:#9cf} main{padding:1em 2em;max-width:1100px}
.cols{display:flex;gap:3em;flex-wrap:wrap} .cols>section{flex:1;min-width:300px}
th{text-align:left;padding-right:1em} blockquote{border-left:4px solid #ddd;margin:1em 0;padding:.2em 1em}
.stars{font-size:1.2em} .error{color:#b00} .served{color:#555;font-size:.9em} footer{color:#888;font-size:.8em;padding:1em 2em}
</style></head>
<body><header><span>Bookinfo · served by ${escapeHtml(me)}</span><span>${sign}</span></header>
<main><h1>${escapeHtml(product.title)}</h1><p>${product.descriptionHtml}</p>
<div class="cols"><section><h2>Book Details</h2>${detailsHtml(d)}</section>
<section><h2>Book Reviews</h2>${reviewsHtml(r)}</section></div></main>
<footer>A sample application for the Weft service mesh: productpage → details (→ stock over proxyless gRPC), reviews v1/v2/v3 → ratings.</footer>
</body></html>`;
}

function productOr404(res, id) {
  const p = PRODUCTS.find((x) => x.id === id);
  if (!p) sendJson(res, 404, { error: `product ${id} not found` });
  return p;
}

async function productPage(req, res) {
  const product = PRODUCTS[0];
  const [d, r] = await Promise.all([getDetails(product.id, req), getReviews(product.id, req)]);
  sendHtml(res, 200, page(product, userOf(req), d, r));
}

serve('productpage', [
  [/^\/(productpage)?$/, productPage],
  [
    /^\/login$/,
    (req, res, m, url) => {
      const user = (url.searchParams.get('user') ?? '').trim();
      if (!/^[A-Za-z0-9._-]{1,64}$/.test(user)) return sendJson(res, 400, { error: 'user must be 1-64 letters, digits, ".", "_" or "-"' });
      sendHtml(res, 302, '', { location: '/productpage', 'set-cookie': `user=${user}; Path=/; SameSite=Lax` });
    },
  ],
  [/^\/logout$/, (req, res) => sendHtml(res, 302, '', { location: '/productpage', 'set-cookie': 'user=; Path=/; Max-Age=0' })],
  [/^\/api\/v1\/products$/, (req, res) => sendJson(res, 200, PRODUCTS)],
  [
    /^\/api\/v1\/products\/(\d+)$/,
    async (req, res, m) => {
      if (!productOr404(res, Number(m[1]))) return;
      const d = await getDetails(Number(m[1]), req);
      sendJson(res, d.ok ? 200 : 503, d.ok ? d.value : { error: `details: ${d.error}` });
    },
  ],
  [
    /^\/api\/v1\/products\/(\d+)\/reviews$/,
    async (req, res, m) => {
      if (!productOr404(res, Number(m[1]))) return;
      const r = await getReviews(Number(m[1]), req);
      sendJson(res, r.ok ? 200 : 503, r.ok ? r.value : { error: `reviews: ${r.error}` });
    },
  ],
]);
