/**
 * The local runtime's API and its state file.
 *
 * The API listens on 127.0.0.1 only:
 *
 *   GET  /v1/status     the RuntimeStatus (src/runtime/status.ts) as JSON
 *   POST /v1/shutdown   202, then the runtime drains and stops everything (what `weft down` sends)
 *
 * `<stateDir>/runtime.json` says where it is: `{ pid, apiPort, api, startedAt, configPaths }`. A state dir belongs
 * to one runtime at a time: a file whose pid is alive and whose API answers (or whose process is still a `weft`
 * process starting up) means another runtime owns it; a file left by a dead process is replaced.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RuntimeStatus } from './status.js';

export interface RuntimeFile {
  pid: number;
  apiPort: number;
  /** `http://127.0.0.1:PORT`. */
  api: string;
  startedAt: string;
  configPaths: string[];
}

export function runtimeFilePath(stateDir: string): string {
  return join(stateDir, 'runtime.json');
}

export function readRuntimeFile(stateDir: string): RuntimeFile | undefined {
  try {
    const v = JSON.parse(readFileSync(runtimeFilePath(stateDir), 'utf8')) as RuntimeFile;
    return typeof v.pid === 'number' && typeof v.apiPort === 'number' ? v : undefined;
  } catch {
    return undefined;
  }
}

export function writeRuntimeFile(stateDir: string, f: RuntimeFile): void {
  writeFileSync(runtimeFilePath(stateDir), `${JSON.stringify(f, null, 2)}\n`);
}

/** Removes runtime.json if it is still this process's. */
export function removeRuntimeFile(stateDir: string, pid = process.pid): void {
  if (readRuntimeFile(stateDir)?.pid === pid) rmSync(runtimeFilePath(stateDir), { force: true });
}

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** GET /v1/status of a runtime; undefined when it does not answer. */
export async function fetchStatus(api: string, timeoutMs = 3000): Promise<RuntimeStatus | undefined> {
  try {
    const r = await fetch(`${api}/v1/status`, { signal: AbortSignal.timeout(timeoutMs) });
    if (r.status !== 200) return undefined;
    return (await r.json()) as RuntimeStatus;
  } catch {
    return undefined;
  }
}

/** The runtime that owns `stateDir`, if one is alive (see the module comment). */
export async function liveRuntime(stateDir: string): Promise<RuntimeFile | undefined> {
  const f = readRuntimeFile(stateDir);
  if (!f || f.pid === process.pid || !pidAlive(f.pid)) return undefined;
  if (await fetchStatus(f.api, 2000)) return f;
  let cmdline = '';
  try {
    cmdline = readFileSync(`/proc/${f.pid}/cmdline`, 'utf8');
  } catch {
    return f; // no /proc: the pid is alive, assume it is the runtime
  }
  return /weft/.test(cmdline) ? f : undefined;
}

export class RuntimeAlreadyRunningError extends Error {
  constructor(
    readonly stateDir: string,
    readonly owner: RuntimeFile,
  ) {
    super(`a weft runtime (pid ${owner.pid}, API ${owner.api}) already runs from state dir ${stateDir}; stop it with \`weft down --state-dir ${stateDir}\`, or use another --state-dir`);
  }
}

/** Serves the API; `onShutdown` runs after the 202 answer is sent. */
export async function serveApi(port: number, status: () => RuntimeStatus, onShutdown: () => void): Promise<Server> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const send = (code: number, body: unknown, headers: Record<string, string> = {}) => {
      res.writeHead(code, { 'content-type': 'application/json', ...headers });
      res.end(`${JSON.stringify(body, null, 2)}\n`);
    };
    if (path === '/v1/status') {
      if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, { error: 'use GET' }, { allow: 'GET, HEAD' });
      return send(200, status());
    }
    if (path === '/v1/shutdown') {
      if (req.method !== 'POST') return send(405, { error: 'use POST' }, { allow: 'POST' });
      res.on('finish', onShutdown);
      return send(202, { stopping: true });
    }
    send(404, { error: `no such endpoint ${path}; try GET /v1/status or POST /v1/shutdown` });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  return server;
}

export function serverPort(s: Server): number {
  return (s.address() as AddressInfo).port;
}
