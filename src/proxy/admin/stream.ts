/**
 * Sending a large body made piece by piece (the stats outputs, stats/render.ts): each piece is written as the
 * connection takes it — the next one is asked for only after 'drain' when the socket is behind — so about one piece
 * is buffered at a time instead of the whole body.
 *
 *   await sendChunks(res, prometheusChunks(store, params));   // ends the response; chunked transfer encoding
 *
 * A client that goes away (or stops reading for STALL_MS) stops the sending; the generator is closed either way. A
 * piece that throws before anything was sent answers 500; later, the connection is reset.
 */
import type { ServerResponse } from 'node:http';
import { holdYoungGeneration } from '../heap.js';

/** How long a response may wait for the client to read before it is dropped. */
export const STALL_MS = 30_000;

export async function sendChunks(res: ServerResponse, chunks: Iterable<string>): Promise<void> {
  // A full output is a burst of short-lived strings: it must not grow the young generation for good (heap.ts).
  const release = holdYoungGeneration();
  const it = chunks[Symbol.iterator]();
  let gone = false;
  let wake: (() => void) | undefined;
  const onGone = (): void => {
    gone = true;
    wake?.();
  };
  const onDrain = (): void => wake?.();
  res.once('close', onGone);
  res.on('drain', onDrain);
  res.setTimeout(STALL_MS, () => res.destroy());
  try {
    for (;;) {
      const r = it.next();
      if (r.done) break;
      if (gone) return;
      if (!res.write(r.value) && !gone) await new Promise<void>((resolve) => (wake = resolve));
      wake = undefined;
      if (gone) return;
    }
    res.end();
  } catch (e) {
    if (res.headersSent) {
      res.destroy(e as Error);
    } else {
      res.statusCode = 500;
      res.setHeader('content-type', 'text/plain; charset=UTF-8');
      res.end(`internal error: ${(e as Error)?.message ?? String(e)}\n`);
    }
  } finally {
    release();
    it.return?.();
    res.off('close', onGone);
    res.off('drain', onDrain);
  }
}
