// Plain GETs against a proxy admin server on 127.0.0.1 (a fresh connection each, no agent).
import { request } from 'node:http';

export interface AdminResponse {
  status: number;
  /** The content-type header. */
  type: string;
  body: string;
}

export function adminGet(port: number, path: string): Promise<AdminResponse> {
  return new Promise((resolve, reject) => {
    request({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body: Buffer.concat(chunks).toString('utf8') }));
    })
      .on('error', reject)
      .end();
  });
}

/** The value of one stat from the admin's /stats (undefined when the proxy does not have it). */
export async function statValue(port: number, name: string): Promise<number | undefined> {
  const escaped = name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const r = await adminGet(port, `/stats?filter=${encodeURIComponent(`^${escaped}$`)}`);
  const m = new RegExp(`^${escaped}: (-?\\d+)$`, 'm').exec(r.body);
  return m ? Number(m[1]) : undefined;
}
