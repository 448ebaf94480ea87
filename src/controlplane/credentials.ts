/**
 * Gateway credentials: the certificates a Gateway server names with `credentialName`, read from a directory
 * (`weft control-plane --secrets-dir DIR`) and served to gateway proxies over ADS as SDS Secrets
 * (`kubernetes://<name>`, `kubernetes://<name>-cacert`; see translate/gateway/tls.ts).
 *
 * Layout (docs/gateways.md), for a credential `<name>` (which may contain `/`, e.g. `namespace/name`):
 * - files `<name>.crt` (certificate chain, PEM), `<name>.key` (private key, PEM) and optionally `<name>.ca.crt`
 *   (CA certificates that client certificates are verified against, for MUTUAL);
 * - or a folder `<name>/` holding the Kubernetes TLS Secret keys as files: `tls.crt`, `tls.key`, `ca.crt`.
 * A credential may hold only a CA. As with Istio's `<name>-cacert` Secrets, the CA of `kubernetes://<x>-cacert`
 * is that of a credential named `<x>-cacert` when there is one, else the CA of credential `<x>`.
 *
 * Every credential is checked before it is used: the certificate parses, the key parses and belongs to the
 * certificate, the CA parses. A credential that fails keeps its last good version (a file being rewritten is
 * never served half-written) and the problem is reported (`problems`, logged by the control plane, naming the
 * file; key material is never logged).
 *
 * Changes are noticed by `fs.watch` on the directory and its subdirectories and by a periodic rescan (the safety
 * net for missed events); `onChange` runs once the contents of some credential changed.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { watch } from 'node:fs';
import type { FSWatcher } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import type { Credential, CredentialView } from './translate/gateway/tls.js';

export interface CredentialDirectoryOptions {
  /** Runs after a (re)scan found changed credentials. */
  onChange?: () => void;
  /** Reports a credential that cannot be used (`file`: the file at fault). */
  onProblem?: (problem: CredentialProblem) => void;
  /** Quiet period after a file event before rescanning (default 100 ms). */
  debounceMs?: number;
  /** Period of the safety-net rescan (default 1000 ms; 0 disables it). */
  rescanIntervalMs?: number;
}

export interface CredentialProblem {
  credential: string;
  file: string;
  message: string;
}

interface Files {
  cert?: string;
  key?: string;
  ca?: string;
}

function pemCerts(text: string, file: string): void {
  const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g);
  if (!blocks?.length) throw new CredentialError(file, 'holds no PEM certificate');
  for (const b of blocks) {
    try {
      new X509Certificate(b);
    } catch (e) {
      throw new CredentialError(file, `holds a certificate that does not parse: ${(e as Error).message}`);
    }
  }
}

class CredentialError extends Error {
  constructor(
    readonly file: string,
    message: string,
  ) {
    super(message);
  }
}

/** Reads and checks one credential's files (throws CredentialError naming the file at fault). */
async function readCredential(files: Files): Promise<Credential> {
  const out: Credential = {};
  if (files.cert || files.key) {
    if (!files.cert) throw new CredentialError(files.key!, 'has no certificate beside it (.crt / tls.crt)');
    if (!files.key) throw new CredentialError(files.cert, 'has no private key beside it (.key / tls.key)');
    const certPem = await readFile(files.cert, 'utf8');
    const keyPem = await readFile(files.key, 'utf8');
    pemCerts(certPem, files.cert);
    let key;
    try {
      key = createPrivateKey(keyPem);
    } catch {
      // The key's bytes are never put in a message.
      throw new CredentialError(files.key, 'does not hold a PEM private key that parses');
    }
    const leaf = new X509Certificate(certPem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/)![0]);
    if (!leaf.checkPrivateKey(key)) throw new CredentialError(files.key, `is not the private key of the certificate in ${files.cert}`);
    out.certChainPem = certPem;
    out.keyPem = keyPem;
  }
  if (files.ca) {
    const caPem = await readFile(files.ca, 'utf8');
    pemCerts(caPem, files.ca);
    out.caPem = caPem;
  }
  return out;
}

function same(a: Credential | undefined, b: Credential): boolean {
  return !!a && a.certChainPem === b.certChainPem && a.keyPem === b.keyPem && a.caPem === b.caPem;
}

/** The credentials of a directory (see the module comment). */
export class CredentialDirectory implements CredentialView {
  readonly where: string;
  private creds = new Map<string, Credential>();
  private watchers = new Map<string, FSWatcher>();
  private timer?: NodeJS.Timeout;
  private rescanTimer?: NodeJS.Timeout;
  private scanning?: Promise<void>;
  private again = false;
  private closed = false;
  /** The problem last reported per credential (reported once until it changes or goes away). */
  private readonly reported = new Map<string, string>();

  constructor(
    readonly dir: string,
    private readonly opts: CredentialDirectoryOptions = {},
  ) {
    this.where = `the secrets directory ${dir}`;
  }

  get(name: string): Credential | undefined {
    return this.creds.get(name);
  }

  /** Credential names, sorted. */
  names(): string[] {
    return [...this.creds.keys()].sort();
  }

  /** Reads the directory once and starts watching it. */
  async start(): Promise<void> {
    await this.scan();
    const every = this.opts.rescanIntervalMs ?? 1000;
    if (every > 0) {
      this.rescanTimer = setInterval(() => void this.scan(), every);
      this.rescanTimer.unref();
    }
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.rescanTimer) clearInterval(this.rescanTimer);
    for (const w of this.watchers.values()) w.close();
    this.watchers.clear();
  }

  /** Rescans now (merged with a scan under way); resolves when the directory was read after the call. */
  scan(): Promise<void> {
    if (this.closed) return Promise.resolve();
    if (this.scanning) {
      this.again = true;
      return this.scanning;
    }
    this.scanning = this.scanOnce().finally(() => {
      this.scanning = undefined;
      if (this.again && !this.closed) {
        this.again = false;
        void this.scan();
      }
    });
    return this.scanning;
  }

  private schedule(): void {
    if (this.closed) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.scan(), this.opts.debounceMs ?? 100);
  }

  private watchDir(dir: string): void {
    if (this.watchers.has(dir)) return;
    try {
      const w = watch(dir, () => this.schedule());
      w.on('error', () => {
        w.close();
        this.watchers.delete(dir);
      });
      this.watchers.set(dir, w);
    } catch {
      // The rescan still notices changes.
    }
  }

  /** Finds every credential's files: `<name>.crt/.key/.ca.crt` and `<name>/tls.crt|tls.key|ca.crt`. */
  private async list(dir: string, found: Map<string, Files>, dirs: Set<string>): Promise<void> {
    dirs.add(dir);
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch {
      return;
    }
    const nameOf = (p: string) => relative(this.dir, p).split(sep).join('/');
    const files = (name: string) => {
      let f = found.get(name);
      if (!f) found.set(name, (f = {}));
      return f;
    };
    for (const e of entries) {
      if (e.name.startsWith('.')) continue; // Kubernetes `..data` links, editor swap files
      const p = join(dir, e.name);
      if (e.isDirectory()) {
        await this.list(p, found, dirs);
        continue;
      }
      if (e.name === 'tls.crt') files(nameOf(dir)).cert = p;
      else if (e.name === 'tls.key') files(nameOf(dir)).key = p;
      else if (e.name === 'ca.crt') files(nameOf(dir)).ca = p;
      else if (e.name.endsWith('.ca.crt')) files(nameOf(p.slice(0, -'.ca.crt'.length))).ca = p;
      else if (e.name.endsWith('.crt')) files(nameOf(p.slice(0, -'.crt'.length))).cert = p;
      else if (e.name.endsWith('.key')) files(nameOf(p.slice(0, -'.key'.length))).key = p;
    }
  }

  private async scanOnce(): Promise<void> {
    const found = new Map<string, Files>();
    const dirs = new Set<string>();
    await this.list(this.dir, found, dirs);
    if (this.closed) return;
    for (const d of dirs) this.watchDir(d);
    for (const [d, w] of this.watchers) {
      if (!dirs.has(d)) {
        w.close();
        this.watchers.delete(d);
      }
    }
    const next = new Map<string, Credential>();
    let changed = false;
    for (const [name, files] of found) {
      if (name === '') continue;
      try {
        const cred = await readCredential(files);
        next.set(name, cred);
        if (!same(this.creds.get(name), cred)) changed = true;
        this.reported.delete(name);
      } catch (e) {
        const prev = this.creds.get(name);
        if (prev) next.set(name, prev);
        const problem: CredentialProblem = e instanceof CredentialError ? { credential: name, file: e.file, message: e.message } : { credential: name, file: files.cert ?? files.key ?? files.ca ?? name, message: (e as Error).message };
        const key = `${problem.file}|${problem.message}`;
        if (this.reported.get(name) !== key) {
          this.reported.set(name, key);
          this.opts.onProblem?.(problem);
        }
      }
    }
    for (const name of this.creds.keys()) if (!next.has(name)) changed = true;
    if (this.closed) return;
    this.creds = next;
    if (changed) this.opts.onChange?.();
  }
}
