// A real Prometheus server (Debian's /usr/bin/prometheus) for tests: scrapes the given targets' /stats/prometheus
// every second, listens on a free 127.0.0.1 port, keeps its data in a temporary directory, and answers PromQL through
// its HTTP API (/api/v1/query).
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, sleep } from './mesh-processes.js';

export const PROMETHEUS_BIN = '/usr/bin/prometheus';

/** One element of an instant vector. */
export interface PromVectorSample {
  metric: Record<string, string>;
  value: number;
}

export class Prometheus {
  private proc?: ChildProcess;
  private dir = '';
  private log = '';
  url = '';

  /** Starts Prometheus scraping `targets` (`host:port`) at `metricsPath` every second; resolves once it is ready. */
  async start(targets: string[], metricsPath = '/stats/prometheus'): Promise<void> {
    this.dir = mkdtempSync(join(tmpdir(), 'weft-prometheus-'));
    const config = join(this.dir, 'prometheus.yml');
    writeFileSync(
      config,
      [
        'global: {scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s}',
        'scrape_configs:',
        '- job_name: weft',
        `  metrics_path: ${metricsPath}`,
        `  static_configs: [{targets: [${targets.map((t) => `'${t}'`).join(', ')}]}]`,
        '',
      ].join('\n'),
    );
    if (!existsSync(PROMETHEUS_BIN)) throw new Error(`${PROMETHEUS_BIN} is missing: install Debian's prometheus package (.ci/run does)`);
    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      this.url = `http://127.0.0.1:${port}`;
      const p = spawn(PROMETHEUS_BIN, [`--config.file=${config}`, `--storage.tsdb.path=${join(this.dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'], { stdio: ['ignore', 'ignore', 'pipe'] });
      this.proc = p;
      p.on('error', (e) => (this.log += `\n${String(e)}`));
      p.stderr!.on('data', (d: Buffer) => (this.log = (this.log + d.toString()).slice(-4000)));
      const ready = await this.waitReady(p);
      if (ready) return;
      await this.stopProcess();
      if (attempt >= 3 || !/address already in use/.test(this.log)) throw new Error(`prometheus did not start:\n${this.log}`);
    }
  }

  private async waitReady(p: ChildProcess): Promise<boolean> {
    for (let i = 0; i < 300; i++) {
      if (p.exitCode !== null) return false;
      const r = await fetch(`${this.url}/-/ready`).catch(() => undefined);
      if (r?.status === 200) return true;
      await sleep(100);
    }
    return false;
  }

  /** Runs an instant query; throws with Prometheus' error for a query it rejects. */
  async query(promql: string): Promise<PromVectorSample[]> {
    const res = await fetch(`${this.url}/api/v1/query?query=${encodeURIComponent(promql)}`);
    const body = (await res.json()) as { status: string; error?: string; data?: { resultType: string; result: Array<{ metric: Record<string, string>; value: [number, string] }> } };
    if (body.status !== 'success') throw new Error(`prometheus rejected ${promql}: ${body.error}`);
    if (body.data?.resultType !== 'vector') return [];
    return body.data.result.map((r) => ({ metric: r.metric, value: Number(r.value[1]) }));
  }

  /** Polls `promql` (every 250 ms, up to `timeoutMs`) until `ok` accepts the result; returns it, or throws. */
  async until(promql: string, ok: (r: PromVectorSample[]) => boolean, what: string, timeoutMs = 30_000): Promise<PromVectorSample[]> {
    const end = Date.now() + timeoutMs;
    let last: PromVectorSample[] = [];
    while (Date.now() < end) {
      last = await this.query(promql);
      if (ok(last)) return last;
      await sleep(250);
    }
    throw new Error(`timed out waiting for ${what}: ${promql} → ${JSON.stringify(last)}\n${this.log}`);
  }

  private async stopProcess(): Promise<void> {
    const p = this.proc;
    this.proc = undefined;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const done = new Promise((r) => p.once('exit', r));
    p.kill('SIGTERM');
    await done;
  }

  async stop(): Promise<void> {
    await this.stopProcess();
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
  }
}
