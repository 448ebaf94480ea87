/**
 * Network namespaces for captured workloads and multi-host tests, made with `ip` (iproute2) as root:
 *
 *   const ns = await createVethNamespace();      // wft-<slot>, veth pair wft<slot>h ↔ wft<slot>n, a private /30
 *   await ns.exec(['ip', 'addr']);               // a command inside (`ip netns exec`)
 *   await ns.close();                            // namespace, veth, /etc/netns/<name>, slot: all gone
 *
 *   const br = await createBridge();             // wftbr<k>, 198.19.<k>.254/24 on the host side
 *   const h = await createBridgedNamespace(br);  // wft-b<k>-<i> at 198.19.<k>.<i>/24, joined to the bridge
 *
 * Addresses come from ranges reserved for network testing (RFC 2544): 198.18.0.0/16 in /30s for veth namespaces
 * (host side .1, namespace side .2) and 198.19.<k>.0/24 per bridge. Namespaces have no default route out of the
 * machine: a veth namespace routes everything but its /30 to `lo`, so its traffic can be captured and redirected
 * locally (iptables.ts) but never leaves; a bridged namespace reaches its bridge's /24 only.
 *
 * Every allocation holds a slot directory under /run/weft-netns (mkdir is the lock, `owner` holds the pid), so
 * concurrent processes never share addresses or names; `cleanupLeftovers()` removes the namespaces, links and
 * slots of processes that are gone (crashed tests), and nothing of a live process.
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const PREFIX = 'wft-';
export const STATE_DIR = '/run/weft-netns';
const VETH_SLOTS = 16384;
const BRIDGE_SLOTS = 256;

export class CaptureError extends Error {}

/** Runs a command; resolves with stdout, rejects with a CaptureError naming the command and its stderr. */
export function sh(cmd: string, args: string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = execFile(cmd, args, { timeout: 30_000 }, (err, stdout, stderr) => {
      if (err) reject(new CaptureError(`${cmd} ${args.join(' ')}: ${String(stderr).trim() || err.message}`));
      else resolve(String(stdout));
    });
    if (input !== undefined) p.stdin?.end(input);
  });
}

function hasCommand(cmd: string): boolean {
  return ['/usr/sbin', '/usr/bin', '/sbin', '/bin'].some((d) => existsSync(join(d, cmd)));
}

/** undefined when namespaces and capture can be set up here; else why not (not root, a missing command). */
export function captureSupport(): string | undefined {
  if (process.platform !== 'linux') return `network namespaces are Linux-only (this is ${process.platform})`;
  if (typeof process.getuid === 'function' && process.getuid() !== 0) return 'needs root (network namespaces and iptables)';
  for (const c of ['ip', 'iptables', 'iptables-restore', 'setpriv']) if (!hasCommand(c)) return `needs ${c}`;
  return undefined;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Takes the first free slot `kind-<n>`; the directory is the lock. */
function takeSlot(kind: string, count: number, start: number): number {
  mkdirSync(STATE_DIR, { recursive: true });
  for (let i = 0; i < count; i++) {
    const n = (start + i) % count;
    const dir = join(STATE_DIR, `${kind}-${n}`);
    try {
      mkdirSync(dir);
    } catch {
      continue;
    }
    writeFileSync(join(dir, 'owner'), String(process.pid));
    return n;
  }
  throw new CaptureError(`no free ${kind} slot in ${STATE_DIR}`);
}

function releaseSlot(kind: string, n: number): void {
  rmSync(join(STATE_DIR, `${kind}-${n}`), { recursive: true, force: true });
}

/** What a slot holds, for cleanup: namespaces and links to delete. */
function recordSlot(kind: string, n: number, what: { namespaces?: string[]; links?: string[] }): void {
  writeFileSync(join(STATE_DIR, `${kind}-${n}`, 'holds'), JSON.stringify(what));
}

async function deleteHeld(dir: string): Promise<void> {
  let held: { namespaces?: string[]; links?: string[] } = {};
  try {
    held = JSON.parse(readFileSync(join(dir, 'holds'), 'utf8')) as typeof held;
  } catch {
    // nothing recorded yet
  }
  for (const ns of held.namespaces ?? []) {
    await sh('ip', ['netns', 'del', ns]).catch(() => undefined);
    rmSync(join('/etc/netns', ns), { recursive: true, force: true });
  }
  for (const l of held.links ?? []) await sh('ip', ['link', 'del', l]).catch(() => undefined);
}

/** Removes what processes that are gone left behind (their namespaces, links, /etc/netns entries, slots). */
export async function cleanupLeftovers(): Promise<void> {
  if (!existsSync(STATE_DIR)) return;
  for (const e of readdirSync(STATE_DIR)) {
    const dir = join(STATE_DIR, e);
    let pid = NaN;
    try {
      pid = Number(readFileSync(join(dir, 'owner'), 'utf8'));
    } catch {
      // a slot being created right now has no owner file for a moment: leave it
      continue;
    }
    if (Number.isInteger(pid) && alive(pid)) continue;
    await deleteHeld(dir);
    rmSync(dir, { recursive: true, force: true });
  }
}

function ipv4(n: number): string {
  return `${(n >>> 24) & 255}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

export interface NetNamespace {
  /** `ip netns` name. */
  readonly name: string;
  /** The namespace's address. */
  readonly address: string;
  /** The host-side address the namespace reaches the host on (veth) or the bridge address. */
  readonly hostAddress: string;
  /** The interface inside the namespace. */
  readonly interface: string;
  /** Runs a command inside the namespace and waits for it (rejects on failure). */
  exec(args: string[], input?: string): Promise<string>;
  /** Deletes everything the namespace holds. Idempotent. */
  close(): Promise<void>;
}

class Namespace implements NetNamespace {
  private closed = false;
  constructor(
    readonly name: string,
    readonly address: string,
    readonly hostAddress: string,
    readonly interface_: string,
    private readonly slot: { kind: string; n: number },
    private readonly links: string[],
  ) {}

  get interface(): string {
    return this.interface_;
  }

  exec(args: string[], input?: string): Promise<string> {
    return sh('ip', ['netns', 'exec', this.name, ...args], input);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await sh('ip', ['netns', 'del', this.name]).catch(() => undefined);
    for (const l of this.links) await sh('ip', ['link', 'del', l]).catch(() => undefined);
    rmSync(join('/etc/netns', this.name), { recursive: true, force: true });
    releaseSlot(this.slot.kind, this.slot.n);
  }
}

/** Writes /etc/netns/<ns>/resolv.conf (bind-mounted over /etc/resolv.conf by `ip netns exec`). */
export function writeNetnsResolvConf(ns: string, text: string): void {
  const dir = join('/etc/netns', ns);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'resolv.conf'), text);
}

/**
 * A namespace joined to the host by a veth pair, on its own /30 of 198.18.0.0/16 (see the module comment). Every
 * destination outside the /30 is routed to `lo` inside the namespace.
 */
export async function createVethNamespace(): Promise<NetNamespace> {
  const n = takeSlot('veth', VETH_SLOTS, (process.pid * 7) % VETH_SLOTS);
  const name = `${PREFIX}${n}`;
  const hostIf = `wft${n}h`;
  const nsIf = `wft${n}n`;
  recordSlot('veth', n, { namespaces: [name], links: [hostIf] });
  const base = ((198 << 24) | (18 << 16)) + n * 4;
  const hostAddress = ipv4(base + 1);
  const address = ipv4(base + 2);
  const ns = new Namespace(name, address, hostAddress, nsIf, { kind: 'veth', n }, [hostIf]);
  try {
    await sh('ip', ['netns', 'add', name]);
    await sh('ip', ['link', 'add', hostIf, 'type', 'veth', 'peer', 'name', nsIf]);
    await sh('ip', ['link', 'set', nsIf, 'netns', name]);
    await sh('ip', ['addr', 'add', `${hostAddress}/30`, 'dev', hostIf]);
    await sh('ip', ['link', 'set', hostIf, 'up']);
    await ns.exec(['ip', 'link', 'set', 'lo', 'up']);
    await ns.exec(['ip', 'addr', 'add', `${address}/30`, 'dev', nsIf]);
    await ns.exec(['ip', 'link', 'set', nsIf, 'up']);
    // Everything else is local: capture redirects it to the sidecar, and nothing can leave the machine.
    await ns.exec(['ip', 'route', 'add', 'default', 'dev', 'lo']);
  } catch (e) {
    await ns.close();
    throw e;
  }
  return ns;
}

export interface Bridge {
  readonly name: string;
  /** The bridge's own address (the host's, in the root namespace). */
  readonly address: string;
  /** `198.19.<k>.` */
  readonly prefix: string;
  close(): Promise<void>;
}

/** A bridge with 198.19.<k>.254/24, for namespaces that stand for hosts on one network. */
export async function createBridge(): Promise<Bridge> {
  const k = takeSlot('bridge', BRIDGE_SLOTS, process.pid % BRIDGE_SLOTS);
  const name = `wftbr${k}`;
  recordSlot('bridge', k, { links: [name] });
  const prefix = `198.19.${k}.`;
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await sh('ip', ['link', 'del', name]).catch(() => undefined);
    releaseSlot('bridge', k);
  };
  try {
    await sh('ip', ['link', 'add', name, 'type', 'bridge']);
    await sh('ip', ['addr', 'add', `${prefix}254/24`, 'dev', name]);
    await sh('ip', ['link', 'set', name, 'up']);
  } catch (e) {
    await close();
    throw e;
  }
  return { name, address: `${prefix}254`, prefix, close };
}

/** A namespace on the bridge at 198.19.<k>.<index> (index 1..253). */
export async function createBridgedNamespace(br: Bridge, index: number): Promise<NetNamespace> {
  if (!Number.isInteger(index) || index < 1 || index > 253) throw new CaptureError(`host index ${index} is not in 1..253`);
  const k = Number(br.name.slice('wftbr'.length));
  const slotN = k * 256 + index;
  mkdirSync(STATE_DIR, { recursive: true });
  try {
    mkdirSync(join(STATE_DIR, `host-${slotN}`));
  } catch {
    throw new CaptureError(`host ${index} of bridge ${br.name} exists already`);
  }
  writeFileSync(join(STATE_DIR, `host-${slotN}`, 'owner'), String(process.pid));
  const name = `${PREFIX}b${k}-${index}`;
  const hostIf = `wftb${k}x${index}`;
  const nsIf = 'eth0';
  recordSlot('host', slotN, { namespaces: [name], links: [hostIf] });
  const address = `${br.prefix}${index}`;
  const ns = new Namespace(name, address, br.address, nsIf, { kind: 'host', n: slotN }, [hostIf]);
  try {
    await sh('ip', ['netns', 'add', name]);
    await sh('ip', ['link', 'add', hostIf, 'type', 'veth', 'peer', 'name', `${hostIf}p`]);
    await sh('ip', ['link', 'set', `${hostIf}p`, 'netns', name]);
    await ns.exec(['ip', 'link', 'set', `${hostIf}p`, 'name', nsIf]);
    await sh('ip', ['link', 'set', hostIf, 'master', br.name]);
    await sh('ip', ['link', 'set', hostIf, 'up']);
    await ns.exec(['ip', 'link', 'set', 'lo', 'up']);
    await ns.exec(['ip', 'addr', 'add', `${address}/24`, 'dev', nsIf]);
    await ns.exec(['ip', 'link', 'set', nsIf, 'up']);
  } catch (e) {
    await ns.close();
    throw e;
  }
  return ns;
}

/** Spawns a long-running command inside a namespace (`ip netns exec`), optionally as another uid/gid (setpriv). */
export function spawnInNamespace(ns: string, cmd: string[], opts: { uid?: number; gid?: number; env?: NodeJS.ProcessEnv; cwd?: string } = {}) {
  const priv = opts.uid !== undefined ? ['setpriv', `--reuid=${opts.uid}`, `--regid=${opts.gid ?? opts.uid}`, '--clear-groups', '--'] : [];
  return spawn('ip', ['netns', 'exec', ns, ...priv, ...cmd], { env: opts.env ?? process.env, cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
}
