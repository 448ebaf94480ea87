/**
 * The control plane's CA, kept current: loads the CA directory at start (creating a self-signed root there on
 * first start, unless the directory is a plugged-in `cacerts` one), then polls the four files of the cacerts
 * layout (size, mtime, inode) and reloads when they change, so replacing the root or the intermediate takes
 * effect without a restart. A reload that fails (a half-copied set of files, a key that does not match) is
 * logged and the CA in force stays; the next change of the files is tried again. Listeners hear about every
 * successful reload whose material differs (`onChange`): the control plane then re-issues its serving
 * certificate and pushes the new trust bundle (ROOTCA) to every proxy.
 */
import { statSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../log.js';
import { CA_FILES, loadCa, loadOrCreateCa } from './ca.js';
import type { CaOptions, CertificateAuthority } from './ca.js';

export interface CaSourceOptions extends CaOptions {
  /** The CA directory (cacerts layout). */
  dir: string;
  /** Create a self-signed root in `dir` when it holds none yet (default true; false for a plugged-in cacerts dir). */
  create?: boolean;
  /** How often the files are checked for changes (default 1000 ms; 0 = never). */
  pollMs?: number;
  logger: Logger;
}

export class CaSource {
  private current?: CertificateAuthority;
  private signature = '';
  private failedSignature = '';
  private timer?: NodeJS.Timeout;
  private readonly listeners = new Set<(ca: CertificateAuthority) => void>();

  constructor(private readonly opts: CaSourceOptions) {}

  /** Loads (or creates) the CA; throws CaLoadError naming the file when it cannot be loaded. */
  async start(): Promise<CertificateAuthority> {
    const { ca, created } = this.opts.create === false ? { ca: loadCa(this.opts.dir, this.opts), created: false } : await loadOrCreateCa(this.opts.dir, this.opts);
    this.current = ca;
    this.signature = this.fileSignature();
    this.opts.logger.info(
      { dir: this.opts.dir, selfSigned: ca.selfSigned, created, caExpires: ca.caNotAfter.toISOString(), trustDomain: ca.trustDomain },
      created ? 'CA created: self-signed root written' : ca.selfSigned ? 'CA loaded: self-signed root' : 'CA loaded: intermediate under a plugged-in root',
    );
    const poll = this.opts.pollMs ?? 1000;
    if (poll > 0) {
      this.timer = setInterval(() => this.check(), poll);
      this.timer.unref();
    }
    return ca;
  }

  /** The CA in force (after start). */
  get ca(): CertificateAuthority {
    if (!this.current) throw new Error('CaSource: not started');
    return this.current;
  }

  /** Calls `cb` with the new CA after each reload that changed it. */
  onChange(cb: (ca: CertificateAuthority) => void): void {
    this.listeners.add(cb);
  }

  /** Checks the files now (also what the timer does). Returns whether a new CA took effect. */
  check(): boolean {
    const sig = this.fileSignature();
    if (sig === this.signature || sig === this.failedSignature) return false;
    let ca: CertificateAuthority;
    try {
      ca = loadCa(this.opts.dir, { ...this.opts, trustDomain: this.current?.trustDomain ?? this.opts.trustDomain });
    } catch (e) {
      this.failedSignature = sig;
      this.opts.logger.error({ dir: this.opts.dir, err: (e as Error).message }, 'CA files changed but cannot be loaded; the CA in force stays');
      return false;
    }
    this.signature = sig;
    this.failedSignature = '';
    const prev = this.current;
    if (prev && prev.caCertPem === ca.caCertPem && prev.rootPem === ca.rootPem && prev.caChain.join('') === ca.caChain.join('')) return false;
    this.current = ca;
    this.opts.logger.info({ dir: this.opts.dir, selfSigned: ca.selfSigned, rootChanged: prev?.rootPem !== ca.rootPem }, 'CA reloaded');
    for (const l of this.listeners) l(ca);
    return true;
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private fileSignature(): string {
    return Object.values(CA_FILES)
      .map((f) => {
        try {
          const s = statSync(join(this.opts.dir, f));
          return `${s.ino}:${s.size}:${s.mtimeMs}`;
        } catch {
          return '-';
        }
      })
      .join('|');
  }
}
