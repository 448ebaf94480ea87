// Test certificates from Weft's own CA library (src/controlplane/ca, through test/helpers/ca.ts's CA): a root CA
// that issues SPIFFE workload certificates (URI SAN), server certificates (DNS SAN) and certificates with chosen
// validity — down to the second, for expired and short-lived certificates. `dir` holds `ca.crt` for CLI clients
// (curl --cacert, openssl -CAfile).
//
//   const ca = await createCa();                                          // ca.certPem (the root), ca.dir
//   const w = await ca.issue({ uri: spiffe('ns', 'sa') });                // w.certPem, w.keyPem (fresh P-256 key)
//   const old = await ca.issue({ uri, notBefore: -3600, notAfter: -60 }); // seconds relative to now: expired
//   ca.close();                                                           // removes the directory
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRootCa } from './ca.js';

export interface IssuedCert {
  certPem: string;
  keyPem: string;
}

export interface IssueOptions {
  /** URI SAN (a SPIFFE id; any trust domain). */
  uri?: string;
  /** DNS SANs. */
  dns?: string[];
  /** Validity start / end in seconds relative to now (defaults: -60 and +3600). */
  notBefore?: number;
  notAfter?: number;
}

export interface TestCa {
  /** The root certificate (PEM). */
  readonly certPem: string;
  /** A directory holding `ca.crt` (the root); tests may write their files there. */
  readonly dir: string;
  issue(o: IssueOptions): Promise<IssuedCert>;
  close(): void;
}

/** `spiffe://<td>/ns/<ns>/sa/<sa>`. */
export function spiffe(ns: string, sa: string, td = 'cluster.local'): string {
  return `spiffe://${td}/ns/${ns}/sa/${sa}`;
}

export async function createCa(trustDomain = 'cluster.local'): Promise<TestCa> {
  const ca = await createRootCa({ trustDomain });
  const dir = mkdtempSync(join(tmpdir(), 'weft-ca-'));
  writeFileSync(join(dir, 'ca.crt'), ca.rootPem);
  return {
    certPem: ca.rootPem,
    dir,
    async issue(o: IssueOptions): Promise<IssuedCert> {
      const now = Date.now();
      const notBefore = new Date(now + (o.notBefore ?? -60) * 1000);
      const ttlMs = now + (o.notAfter ?? 3600) * 1000 - notBefore.getTime();
      const r = await ca.issueWithKey({ altNames: { uris: o.uri ? [o.uri] : [], dnsNames: o.dns ?? [] } }, ttlMs, { notBefore });
      return { certPem: r.certPem, keyPem: r.keyPem };
    },
    close(): void {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
