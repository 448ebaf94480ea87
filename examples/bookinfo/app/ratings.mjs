/**
 * Bookinfo `ratings`: GET /ratings/<id> → `{ id, ratings: { Reviewer1: 5, Reviewer2: 4 }, instance }`.
 * Called by reviews v2 and v3 (the fault-injection tasks delay or abort these calls).
 */
import { instanceName, sendJson, serve } from './lib.mjs';

const me = instanceName('ratings');

serve('ratings', [
  [/^\/ratings\/(\d+)$/, (req, res, m) => sendJson(res, 200, { id: Number(m[1]), ratings: { Reviewer1: 5, Reviewer2: 4 }, instance: me })],
]);
