/**
 * A workload identity read from files, Istio's file-mounted certificate layout (`cert-chain.pem`, `key.pem`,
 * `root-cert.pem` in one directory, as under /etc/certs): for proxies whose certificates are provisioned by
 * something else (a secrets volume, a test). The files are read at start and again whenever the directory
 * changes; a new set is taken only once it is complete and valid (the key matches the certificate), so replacing
 * the files one by one, or atomically by rename, rotates the certificate without a window of a broken pair.
 *
 *   const id = await FileIdentity.open('/etc/certs');   // throws when the files are missing or invalid
 *   new SecretManager(id);                               // `default` and `ROOTCA` come from it
 *   id.close();
 */
import { watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { createSecureContext } from 'node:tls';
import type { IdentityMaterial, WorkloadIdentity } from './identity/index.js';

export const CERT_CHAIN_FILE = 'cert-chain.pem';
export const KEY_FILE = 'key.pem';
export const ROOT_CERT_FILE = 'root-cert.pem';


export class FileIdentity implements WorkloadIdentity {
  private cur: IdentityMaterial | null = null;
  private readonly cbs: Array<(m: IdentityMaterial) => void> = [];
  private watcher: FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;

  private constructor(readonly dir: string) {}

  static async open(dir: string): Promise<FileIdentity> {
    const id = new FileIdentity(dir);
    id.cur = await id.read();
    id.watcher = watch(dir, () => id.schedule());
    id.watcher.on('error', () => undefined);
    return id;
  }

  current(): IdentityMaterial | null {
    return this.cur;
  }

  onChange(cb: (m: IdentityMaterial) => void): void {
    this.cbs.push(cb);
  }

  /** Re-reads the files now (the watcher does it on change). */
  async reload(): Promise<boolean> {
    let next: IdentityMaterial;
    try {
      next = await this.read();
    } catch {
      return false; // incomplete or invalid: keep the current certificate
    }
    const c = this.cur;
    if (c !== null && c.certChainPem === next.certChainPem && c.keyPem === next.keyPem && c.rootPem === next.rootPem) return false;
    this.cur = next;
    for (const cb of this.cbs) cb(next);
    return true;
  }

  close(): void {
    clearTimeout(this.timer);
    this.watcher?.close();
  }

  private schedule(): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.reload(), 50);
    this.timer.unref();
  }

  private async read(): Promise<IdentityMaterial> {
    const [certChainPem, keyPem, rootPem] = await Promise.all([CERT_CHAIN_FILE, KEY_FILE, ROOT_CERT_FILE].map((f) => readFile(join(this.dir, f), 'latin1')));
    // Throws unless the key matches the leaf certificate and the root parses.
    createSecureContext({ cert: certChainPem, key: keyPem, ca: rootPem });
    const notAfter = new Date(new X509Certificate(certChainPem!).validTo);
    return { certChainPem: certChainPem!, keyPem: keyPem!, rootPem: rootPem!, notAfter };
  }
}
