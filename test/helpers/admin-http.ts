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
