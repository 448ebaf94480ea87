/**
 * Bookinfo `reviews`: GET /reviews/<id> → two reviews of the book. One program, three versions, chosen by the
 * environment as Bookinfo's reviews does:
 *   v1: ENABLE_RATINGS unset → no stars;
 *   v2: ENABLE_RATINGS=true, STAR_COLOR=black;   v3: ENABLE_RATINGS=true, STAR_COLOR=red.
 * With ratings enabled it calls `http://ratings:9080/ratings/<id>` through the sidecar (HTTP_PROXY), forwarding
 * the trace and user headers; when ratings fails the reviews still answer, each with `rating.error`.
 * The answer says which version and instance served it (`version`, `instance`).
 */
import { callService, forwardHeaders, instanceName, sendJson, serve } from './lib.mjs';

const me = instanceName('reviews');
const version = process.env.SERVICE_VERSION ?? 'v1';
const ratingsEnabled = process.env.ENABLE_RATINGS === 'true';
const starColor = process.env.STAR_COLOR ?? 'black';
const RATINGS_URL = process.env.RATINGS_URL ?? 'http://ratings:9080';
const RATINGS_TIMEOUT_MS = 2500;

const REVIEWS = [
  { reviewer: 'Reviewer1', text: 'An extremely entertaining play by Shakespeare. The slapstick humour is refreshing!' },
  { reviewer: 'Reviewer2', text: 'Absolutely fun and entertaining. The play lacks thematic depth when compared to other plays by Shakespeare.' },
];

async function ratingsFor(id, headers) {
  try {
    const r = await callService(`${RATINGS_URL}/ratings/${id}`, headers, RATINGS_TIMEOUT_MS);
    if (r.status !== 200 || !r.json?.ratings) return { error: `ratings service answered ${r.status}${r.body ? `: ${r.body.slice(0, 120)}` : ''}` };
    return { ratings: r.json.ratings };
  } catch (e) {
    return { error: `ratings service is unavailable (${e.message})` };
  }
}

serve('reviews', [
  [
    /^\/reviews\/(\d+)$/,
    async (req, res, m) => {
      const id = Number(m[1]);
      const r = ratingsEnabled ? await ratingsFor(id, forwardHeaders(req)) : undefined;
      const reviews = REVIEWS.map((rev) => {
        if (!r) return { ...rev };
        if (r.error) return { ...rev, rating: { error: r.error } };
        return { ...rev, rating: { stars: r.ratings[rev.reviewer] ?? 0, color: starColor } };
      });
      sendJson(res, 200, { id, version, instance: me, reviews });
    },
  ],
]);
