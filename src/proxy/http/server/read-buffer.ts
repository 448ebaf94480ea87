/**
 * One read buffer for every plaintext downstream HTTP/1 connection, as the upstream pool does with `onread`
 * (upstream/pool/h1-pool.ts).
 *
 *   if (useSharedReadBuffer(socket, (n, buf) => onBytes(buf.subarray(0, n)))) ...   // else: socket.on('data', ...)
 *
 * A socket accepted by net.Server reads each chunk into a buffer of its own (allocated and resized per read,
 * freed by the garbage collector) and delivers it through the readable stream ('data'). Node's `onread` option
 * replaces both with one caller-provided buffer and a callback, but it exists only for sockets the program
 * connects. This switches an accepted socket to the same mode, through the same fields net.Socket keeps for
 * `onread` (found once, on a socket made with the option) and the handle's `useUserBuffer`. Pause/resume and
 * 'end' behave as for `onread` sockets: pause() stops reading, resume() restarts it, EOF still emits 'end'.
 *
 * The callback's bytes are only valid during the call: the next read on any connection overwrites them. The
 * consumer must parse synchronously and copy what it keeps.
 *
 * Not switched (false: the caller reads 'data' as usual): TLS sockets (their handle decrypts into its own
 * buffers), sockets with bytes already queued in the readable stream, a Node without these fields.
 */
import { Socket } from 'node:net';

const READ_BUFFER = Buffer.allocUnsafe(65536);

interface ReadFields {
  buffer: symbol;
  callback: symbol;
  generator: symbol;
}

/** net.Socket's `onread` fields (kBuffer, kBufferCb, kBufferGen), or null when this Node does not have them. */
const FIELDS: ReadFields | null = findFields();

function findFields(): ReadFields | null {
  try {
    const probe = Buffer.alloc(1);
    const cb = (): boolean => true;
    const s = new Socket({ onread: { buffer: probe, callback: cb } } as ConstructorParameters<typeof Socket>[0]);
    const rec = s as unknown as Record<symbol, unknown>;
    let buffer: symbol | undefined;
    let callback: symbol | undefined;
    let generator: symbol | undefined;
    for (const k of Object.getOwnPropertySymbols(s)) {
      if (rec[k] === probe) buffer = k;
      else if (rec[k] === cb) callback = k;
      else if (k.description === 'kBufferGen') generator = k;
    }
    if (buffer === undefined || callback === undefined || generator === undefined || rec[generator] !== null) return null;
    return { buffer, callback, generator };
  } catch {
    return null;
  }
}

interface StreamHandle {
  useUserBuffer?: (buf: Uint8Array) => void;
}

/**
 * Reads of `socket` go into the shared buffer and to `onRead(n, buffer)` instead of 'data' events. False when the
 * socket cannot be switched (see the module comment); nothing was changed then.
 */
export function useSharedReadBuffer(socket: Socket, onRead: (n: number, buf: Buffer) => void): boolean {
  const f = FIELDS;
  if (f === null) return false;
  const handle = (socket as unknown as { _handle?: StreamHandle | null })._handle;
  if (handle == null || typeof handle.useUserBuffer !== 'function') return false;
  if ((socket as { encrypted?: boolean }).encrypted === true || socket.readableLength > 0 || socket.destroyed) return false;
  const rec = socket as unknown as Record<symbol, unknown>;
  if (rec[f.buffer] !== null || rec[f.callback] !== null || rec[f.generator] !== null) return false;
  rec[f.buffer] = READ_BUFFER;
  // net.Socket stops reading when the callback returns false; onRead returns nothing (pausing is pause()'s job).
  rec[f.callback] = onRead;
  handle.useUserBuffer(READ_BUFFER);
  return true;
}
