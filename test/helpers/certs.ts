// Test certificates made with the openssl CLI: a CA (self-signed, ECDSA P-256) that issues SPIFFE workload
// certificates (URI SAN), server certificates (DNS SAN) and certificates with chosen validity — down to the second,
// for expired and short-lived certificates — through `openssl ca` with its own small database in a temp directory.
//
//   const ca = createCa('mesh');                                   // ca.certPem, ca.keyPem
//   const w = ca.issue({ uri: spiffe('ns', 'sa') });               // w.certPem, w.keyPem (P-256 key made by node:crypto)
//   const old = ca.issue({ uri, notBefore: -3600, notAfter: -60 }); // seconds relative to now: already expired
//   ca.close();                                                    // removes the directory
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface IssuedCert {
  certPem: string;
  keyPem: string;
}

export interface IssueOptions {
  /** URI SAN (a SPIFFE id). */
  uri?: string;
  /** DNS SANs. */
  dns?: string[];
  /** Subject CN (default: none, like Istio's workload certificates: empty subject). */
  cn?: string;
  /** Validity start / end in seconds relative to now (defaults: -60 and +3600). */
  notBefore?: number;
  notAfter?: number;
}

export interface TestCa extends IssuedCert {
  readonly dir: string;
  issue(o: IssueOptions): IssuedCert;
  close(): void;
}

/** `spiffe://<td>/ns/<ns>/sa/<sa>`. */
export function spiffe(ns: string, sa: string, td = 'cluster.local'): string {
  return `spiffe://${td}/ns/${ns}/sa/${sa}`;
}

function ec(): string {
  return generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
}

/** openssl ca's date format: YYYYMMDDHHMMSSZ (GeneralizedTime). */
function gtime(offsetSeconds: number): string {
  const d = new Date(Date.now() + offsetSeconds * 1000);
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getUTCFullYear()}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}Z`;
}

export function createCa(name = 'weft-test-ca'): TestCa {
  const dir = mkdtempSync(join(tmpdir(), 'weft-ca-'));
  const keyPem = ec();
  writeFileSync(join(dir, 'ca.key'), keyPem, { mode: 0o600 });
  execFileSync('openssl', ['req', '-x509', '-new', '-key', join(dir, 'ca.key'), '-out', join(dir, 'ca.crt'), '-days', '2', '-subj', `/O=${name}`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], { stdio: 'pipe' });
  writeFileSync(join(dir, 'index.txt'), '');
  writeFileSync(join(dir, 'serial'), '1000\n');
  writeFileSync(
    join(dir, 'ca.cnf'),
    `[ca]
default_ca = ca_default
[ca_default]
dir = ${dir}
database = $dir/index.txt
new_certs_dir = $dir
serial = $dir/serial
certificate = $dir/ca.crt
private_key = $dir/ca.key
default_md = sha256
policy = policy_any
unique_subject = no
email_in_dn = no
copy_extensions = none
[policy_any]
commonName = optional
organizationName = optional
`,
  );
  const certPem = readFileSync(join(dir, 'ca.crt'), 'latin1');
  let n = 0;
  return {
    dir,
    certPem,
    keyPem,
    issue(o: IssueOptions): IssuedCert {
      const id = `c${n++}`;
      const key = ec();
      const keyFile = join(dir, `${id}.key`);
      writeFileSync(keyFile, key, { mode: 0o600 });
      const sans = [...(o.uri ? [`URI:${o.uri}`] : []), ...(o.dns ?? []).map((d) => `DNS:${d}`)];
      const ext = ['[ext]', 'basicConstraints = critical,CA:FALSE', 'keyUsage = critical,digitalSignature,keyEncipherment', 'extendedKeyUsage = serverAuth,clientAuth'];
      if (sans.length) ext.push(`subjectAltName = critical,${sans.join(',')}`);
      writeFileSync(join(dir, `${id}.ext`), ext.join('\n') + '\n');
      const subj = o.cn ? `/CN=${o.cn}` : '/';
      execFileSync('openssl', ['req', '-new', '-key', keyFile, '-out', join(dir, `${id}.csr`), '-subj', subj], { stdio: 'pipe' });
      execFileSync(
        'openssl',
        ['ca', '-batch', '-notext', '-config', join(dir, 'ca.cnf'), '-in', join(dir, `${id}.csr`), '-out', join(dir, `${id}.crt`), '-startdate', gtime(o.notBefore ?? -60), '-enddate', gtime(o.notAfter ?? 3600), '-extfile', join(dir, `${id}.ext`), '-extensions', 'ext', ...(o.cn ? [] : ['-preserveDN'])],
        { stdio: 'pipe' },
      );
      return { certPem: readFileSync(join(dir, `${id}.crt`), 'latin1'), keyPem: key };
    },
    close(): void {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
