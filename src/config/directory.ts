/**
 * The directory source: watches config files and directories and feeds every change into a `ConfigStore`.
 *
 * - Paths are directories (read recursively: `.yaml`, `.yml` and `.json` files; dot-files, dot-directories,
 *   `node_modules` and subdirectories holding a `.weftignore` file skipped, as `listConfigFiles` does) or single
 *   files (read whatever their extension).
 * - Changes are noticed by `fs.watch` and, as a safety net for missed events (inotify queue overflows, network
 *   filesystems, watch limits), by a periodic rescan that compares each file's inode, size, mtime and ctime.
 * - Bursts are debounced: a reload runs once no event arrived for `debounceMs`, or `maxWaitMs` after the first
 *   event of a burst at the latest. A reload re-reads only the files that changed and hands them to the store
 *   in one batch, so one burst gives at most one change event.
 * - Except that a burst of events that only create, replace or remove whole files is reloaded at once (after
 *   `settleMs` of quiet, so the events of one save arrive together), on Linux (inotify): an atomic save renames
 *   a complete file into place, which inotify reports as a rename, while a file written in place also reports
 *   changes (IN_MODIFY), and a burst with a change on a config file waits for `debounceMs` of quiet as above.
 *   A file that is created and then written in place reports its creation first: if its first write comes while
 *   such a reload reads it, the read is dropped (events are drained after the read, and a change event for the
 *   file means it is being written) and the file is read after the quiet period. So a half-written file is never
 *   taken, and a config tool's atomic save is picked up in milliseconds instead of after the quiet period.
 * - A file that suddenly reads as empty while it used to define resources (truncate-then-write saves) is read
 *   once more after another quiet period before its resources are dropped.
 * - Events on dot-files (editor swap files, Kubernetes ConfigMap `..data` symlink swaps) make the source re-check
 *   the files of that directory by their stat signature.
 *
 * Watching: on macOS and Windows one native recursive watcher per configured directory; elsewhere (Linux) one
 * non-recursive watcher per directory. Node's recursive mode on Linux is emulated in JavaScript with per-file
 * watchers: it stops reporting a file once the file is replaced by a rename (atomic saves; seen on Node 20.20)
 * and has known races and ENOENT errors (nodejs/node#48437, #52018, #53350).
 */
import { existsSync, watch } from 'node:fs';
import type { FSWatcher, Stats } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, normalize, relative, sep } from 'node:path';
import type { Diagnostic } from '../api/diagnostics.js';
import { IGNORE_MARKER, isConfigFile, parseConfigText } from '../api/source.js';
import { ConfigStore } from './store.js';
import type { ConfigChange, ConfigSnapshot, UnitChange } from './store.js';

export interface DirectorySourceOptions {
  /** The store to feed (default: a new one, see `DirectorySource.store`). */
  store?: ConfigStore;
  /** The source's name in the store (default `files`); sources that feed the same store need distinct names. */
  name?: string;
  /** Quiet period after the last event before a reload (default 100 ms). */
  debounceMs?: number;
  /**
   * Quiet period before reloading a burst that only created, replaced (renamed into place) or removed whole
   * files (default 10 ms; Linux only, elsewhere every burst waits for `debounceMs`). Set it to `debounceMs` to
   * treat every burst alike.
   */
  settleMs?: number;
  /** Longest delay between the first event of a burst and its reload (default 1000 ms). */
  maxWaitMs?: number;
  /** Period of the safety-net rescan (default 2000 ms; 0 disables it). */
  rescanIntervalMs?: number;
  /** Whether to use fs.watch at all (default true; false leaves only the periodic rescan). */
  watch?: boolean;
  /**
   * `auto` (default): `recursive` on macOS and Windows, `per-directory` elsewhere. `recursive` uses fs.watch's
   * recursive mode, which is only reliable where the OS provides it natively (not on Linux, see above).
   */
  watchMode?: 'auto' | 'recursive' | 'per-directory';
  /** Whether watchers and timers keep the process alive (default true). */
  persistent?: boolean;
  /** Called with unexpected errors of a reload (default: `process.emitWarning`). */
  onError?: (err: Error) => void;
}

/** What one reload did. */
export interface ReloadResult {
  /** Files read (in path order). */
  read: string[];
  /** Files found to be gone. */
  removed: string[];
  /** The store change it produced, if any. */
  change: ConfigChange | undefined;
}

/** How many entries of a directory a walk stats at once. */
const STAT_BATCH = 64;

/** The pseudo-unit holding the source's own problems (missing paths, failed watchers). */
const PATHS_UNIT = '\0paths';

export class DirectorySource {
  readonly store: ConfigStore;
  readonly name: string;
  readonly #roots: string[];
  readonly #debounceMs: number;
  readonly #settleMs: number;
  readonly #maxWaitMs: number;
  readonly #rescanIntervalMs: number;
  readonly #watch: boolean;
  readonly #recursive: boolean;
  readonly #persistent: boolean;
  readonly #onError: (err: Error) => void;

  /** Stat signature of every file as last read. */
  readonly #known = new Map<string, string>();
  /** Files whose last valid version defined at least one resource. */
  readonly #nonEmpty = new Set<string>();
  /** Files read as empty once already (see the truncate-then-write rule). */
  readonly #emptyOnce = new Set<string>();
  /** Watchers by `r:<dir>` (recursive) or `d:<dir>`, with the identity (device:inode) of the watched directory. */
  readonly #watchers = new Map<string, { watcher: FSWatcher; dirId: string | undefined }>();
  /** Watchers whose directory reported its own deletion (they follow the deleted directory: replace them). */
  readonly #stale = new Set<string>();
  readonly #watchProblems = new Map<string, Diagnostic>();
  #rootProblems: Diagnostic[] = [];

  #dirtyPaths = new Set<string>();
  #dirtyDirs = new Set<string>();
  /** The pending burst has an in-place change of a config file (or something else that needs the quiet period). */
  #slow = false;
  /** Config files with a change event since the current reload started (see the module comment). */
  #changedSince = new Set<string>();
  #needFull = false;
  #timer: NodeJS.Timeout | undefined;
  #burstStart: number | undefined;
  /** When the last file event of the pending burst arrived (ConfigChange.seen). */
  #lastEventAt: number | undefined;
  #interval: NodeJS.Timeout | undefined;
  #rescanQueued = false;
  #queue: Promise<unknown> = Promise.resolve();
  #started = false;
  #closed = false;

  constructor(paths: string | readonly string[], opts: DirectorySourceOptions = {}) {
    const list = typeof paths === 'string' ? [paths] : [...paths];
    this.#roots = [...new Set(list.map((p) => stripSep(normalize(p))))];
    this.store = opts.store ?? new ConfigStore();
    this.name = opts.name ?? 'files';
    this.#debounceMs = opts.debounceMs ?? 100;
    // Event kinds mean what the module comment says only with inotify (per-directory watchers on Linux).
    this.#settleMs = process.platform === 'linux' ? Math.min(opts.settleMs ?? 10, this.#debounceMs) : this.#debounceMs;
    this.#maxWaitMs = Math.max(opts.maxWaitMs ?? 1000, this.#debounceMs);
    this.#rescanIntervalMs = opts.rescanIntervalMs ?? 2000;
    this.#watch = opts.watch ?? true;
    const mode = opts.watchMode ?? 'auto';
    this.#recursive = mode === 'recursive' || (mode === 'auto' && (process.platform === 'darwin' || process.platform === 'win32'));
    this.#persistent = opts.persistent ?? true;
    this.#onError = opts.onError ?? ((e) => process.emitWarning(e));
  }

  /** Loads every file, starts watching, and resolves with the store's snapshot after that initial load. */
  async start(): Promise<ConfigSnapshot> {
    if (this.#started) throw new Error('DirectorySource.start() called twice');
    this.#started = true;
    await this.#run(() => this.#reload(true));
    if (this.#rescanIntervalMs > 0 && !this.#closed) {
      this.#interval = setInterval(() => this.#periodic(), this.#rescanIntervalMs);
      if (!this.#persistent) this.#interval.unref();
    }
    return this.store.snapshot();
  }

  /**
   * Reloads now: processes pending events without waiting for the debounce and rescans every path. When it
   * resolves, everything that was on disk when it was called is reflected in the store.
   */
  rescan(): Promise<ReloadResult> {
    if (this.#closed || !this.#started) return Promise.resolve({ read: [], removed: [], change: undefined });
    return this.#run(() => this.#reload(true));
  }

  /** Stops every watcher and timer; waits for a reload in progress to finish. The store keeps its content. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    clearInterval(this.#interval);
    this.#timer = this.#interval = undefined;
    for (const w of this.#watchers.values()) w.watcher.close();
    this.#watchers.clear();
    await this.#queue;
  }

  // --- scheduling -------------------------------------------------------------------------------------------

  /** Runs reloads one at a time. */
  #run(task: () => Promise<ReloadResult>): Promise<ReloadResult> {
    const p = this.#queue.then(task);
    this.#queue = p;
    return p;
  }

  /** (Re)starts the quiet period of the pending burst; `slow`: the burst needs the full quiet period. */
  #schedule(slow = false): void {
    if (this.#closed || !this.#started) return;
    if (slow) this.#slow = true;
    const now = Date.now();
    this.#burstStart ??= now;
    const quiet = this.#slow || this.#recursive ? this.#debounceMs : this.#settleMs;
    const wait = Math.max(0, Math.min(quiet, this.#burstStart + this.#maxWaitMs - now));
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (!this.#closed) void this.#run(() => this.#reload(false, true));
    }, wait);
    if (!this.#persistent) this.#timer.unref();
  }

  #periodic(): void {
    if (this.#rescanQueued || this.#closed) return;
    this.#rescanQueued = true;
    void this.#run(() => this.#reload(true)).finally(() => {
      this.#rescanQueued = false;
    });
  }

  #onEvent(id: string, dir: string, event: string, filename: string | Buffer | null): void {
    if (this.#closed) return;
    this.#lastEventAt = Date.now();
    const name = filename?.toString();
    let slow = false;
    if (name == null) this.#needFull = true; // the platform did not say what changed
    else {
      const p = join(dir, name);
      this.#dirtyPaths.add(p);
      if (event === 'change' && !isIgnoredName(name)) {
        // Written in place (or its attributes changed): it may be half-written.
        slow = true;
        this.#changedSince.add(p);
      }
    }
    if (name === basename(dir)) {
      // How a watched directory reports its own deletion (or a child with the directory's name changed): the
      // watcher would keep following the deleted directory even if one is re-created under the same name.
      this.#stale.add(id);
      this.#needFull = true;
    }
    this.#schedule(slow);
  }

  // --- watching ---------------------------------------------------------------------------------------------

  /**
   * Watches `dir` unless already watched. `st` (the directory's stats) detects a directory that was deleted and
   * re-created under the same name: the old watcher follows the deleted one, so it is replaced.
   */
  #ensureWatcher(dir: string, recursive: boolean, st?: Stats): void {
    if (!this.#watch || this.#closed) return;
    const id = `${recursive ? 'r' : 'd'}:${dir}`;
    // Inode numbers are reused at once by a directory re-created under the same name; the birth time is not.
    const dirId = st ? `${st.dev}:${st.ino}:${st.birthtimeMs}` : undefined;
    const existing = this.#watchers.get(id);
    if (existing) {
      if (!dirId || !existing.dirId || existing.dirId === dirId) return;
      existing.watcher.close();
      this.#watchers.delete(id);
    }
    try {
      const w = watch(dir, { recursive, persistent: this.#persistent }, (event, filename) => this.#onEvent(id, dir, event, filename));
      w.on('error', () => {
        // The directory went away or the watcher broke: drop it; a full rescan re-creates what is still needed.
        w.close();
        if (this.#watchers.get(id)?.watcher === w) this.#watchers.delete(id);
        this.#needFull = true;
        this.#schedule();
      });
      this.#watchers.set(id, { watcher: w, dirId });
      this.#watchProblems.delete(dir);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return; // gone meanwhile: the next reload sees it
      this.#watchProblems.set(dir, {
        severity: 'Warning',
        code: 'WFT0100',
        message: `cannot watch ${dir}: ${code ?? (e as Error).message}`,
        hint: `changes there are picked up by the periodic rescan${this.#rescanIntervalMs > 0 ? ` (every ${this.#rescanIntervalMs} ms)` : ', which is disabled'}; on Linux raise fs.inotify.max_user_watches`,
        pos: { file: dir, line: 1, column: 1 },
      });
    }
  }

  /** Closes the watchers of `dir` and of every directory below it. */
  #dropWatchersUnder(dir: string): void {
    for (const [id, w] of this.#watchers) {
      const d = id.slice(2);
      if (d === dir || d.startsWith(dir + sep)) {
        w.watcher.close();
        this.#watchers.delete(id);
      }
    }
  }

  /** Closes every watcher not in `wanted`, and forgets the watch problems of directories no longer wanted. */
  #keepWatchers(wanted: ReadonlySet<string>): void {
    for (const [id, w] of this.#watchers) {
      if (wanted.has(id)) continue;
      w.watcher.close();
      this.#watchers.delete(id);
    }
    for (const dir of this.#watchProblems.keys()) if (!wanted.has(`d:${dir}`) && !wanted.has(`r:${dir}`)) this.#watchProblems.delete(dir);
  }

  // --- reloading --------------------------------------------------------------------------------------------

  /** Which root a path belongs to, and whether it lies under an ignored (dot) name; undefined when not followed. */
  #classify(p: string): { root: string; isRoot: boolean; ignoredIn?: string } | undefined {
    for (const root of this.#roots) {
      if (p === root) return { root, isRoot: true };
      const rel = relative(root, p);
      if (!rel || rel === '..' || rel.startsWith(`..${sep}`) || isAbsolute(rel)) continue;
      const segments = rel.split(sep);
      const i = segments.findIndex(isIgnoredName);
      // Inside a subdirectory skipped for its IGNORE_MARKER (as #walk skips it): not followed.
      for (let j = 1; j < segments.length; j++) if (existsSync(join(root, ...segments.slice(0, j), IGNORE_MARKER))) return undefined;
      if (i >= 0) return { root, isRoot: false, ignoredIn: join(root, ...segments.slice(0, i)) };
      return { root, isRoot: false };
    }
    return undefined;
  }

  /** Walks a directory: registers watchers, collects directories and config files with their stats. */
  async #walk(dir: string, st: Stats, dirs: Set<string>, files: Map<string, Stats>, visited: Set<string>, isRoot = true): Promise<void> {
    let entries: string[];
    try {
      entries = (await readdir(dir)).sort();
    } catch {
      return; // vanished or unreadable: the caller sees it when it stats the directory again
    }
    if (!isRoot && entries.includes(IGNORE_MARKER)) return; // skipped, as listConfigFiles skips it
    if (!this.#recursive) this.#ensureWatcher(dir, false, st);
    dirs.add(dir);
    visited.add(`${st.dev}:${st.ino}`);
    // Stat'ed STAT_BATCH at a time (the thread pool does several at once): a rescan of a directory of a thousand
    // files takes a few event-loop turns instead of a thousand, and holds up the reloads queued behind it (an
    // edit's) that much less.
    const paths = entries.filter((e) => !isIgnoredName(e)).map((e) => join(dir, e));
    const stats: Array<Stats | undefined> = [];
    for (let i = 0; i < paths.length; i += STAT_BATCH) stats.push(...(await Promise.all(paths.slice(i, i + STAT_BATCH).map(statOrUndefined))));
    for (let i = 0; i < paths.length; i++) {
      const p = paths[i]!;
      const st = stats[i];
      if (!st) continue;
      if (st.isDirectory()) {
        if (visited.has(`${st.dev}:${st.ino}`)) continue; // a symlink loop
        await this.#walk(p, st, dirs, files, visited, false);
      } else if (st.isFile() && isConfigFile(p)) {
        files.set(p, st);
      }
    }
  }

  /** `afterEvents`: the reload of a burst of events (which may have been settled, see the module comment). */
  async #reload(full: boolean, afterEvents = false): Promise<ReloadResult> {
    const settled = afterEvents && !this.#slow && !this.#recursive && this.#settleMs < this.#debounceMs;
    const dirtyPaths = this.#dirtyPaths;
    const dirtyDirs = this.#dirtyDirs;
    full ||= this.#needFull;
    this.#dirtyPaths = new Set();
    this.#dirtyDirs = new Set();
    this.#needFull = false;
    this.#slow = false;
    this.#changedSince.clear();
    for (const id of this.#stale) {
      this.#watchers.get(id)?.watcher.close();
      this.#watchers.delete(id);
    }
    this.#stale.clear();
    clearTimeout(this.#timer);
    const first = this.#burstStart;
    const last = this.#lastEventAt;
    const seen = afterEvents && first !== undefined && last !== undefined ? { first: Math.min(first, last), last } : undefined;
    this.#timer = this.#burstStart = this.#lastEventAt = undefined;
    try {
      return await this.#reloadNow(full, dirtyPaths, dirtyDirs, settled, seen);
    } catch (e) {
      this.#onError(e instanceof Error ? e : new Error(String(e)));
      this.#needFull = true;
      return { read: [], removed: [], change: undefined };
    }
  }

  async #reloadNow(full: boolean, dirtyPaths: Set<string>, dirtyDirs: Set<string>, settled: boolean, seen?: { first: number; last: number }): Promise<ReloadResult> {
    /** Files to read whatever their signature (an event named them). */
    const force = new Set<string>();
    /** Files to read if their signature changed. */
    const candidates = new Map<string, Stats>();
    /** Paths found missing: the known files at or below them are gone. */
    const gone = new Set<string>();

    if (full) {
      const dirs = new Set<string>();
      const files = new Map<string, Stats>();
      const wanted = new Set<string>();
      this.#rootProblems = [];
      for (const root of this.#roots) {
        const st = await statOrUndefined(root);
        if (st?.isDirectory()) {
          if (this.#recursive) {
            this.#ensureWatcher(root, true, st);
            wanted.add(`r:${root}`);
          }
          await this.#walk(root, st, dirs, files, new Set());
        } else {
          // A single file, or a path that does not exist yet: watch its directory for it to appear or change.
          this.#ensureWatcher(dirname(root), false);
          wanted.add(`d:${dirname(root)}`);
          if (st?.isFile()) files.set(root, st);
          else this.#rootProblems.push(missing(root, st));
        }
      }
      if (!this.#recursive) for (const d of dirs) wanted.add(`d:${d}`);
      this.#keepWatchers(wanted);
      for (const [f, st] of files) candidates.set(f, st);
      // Files named by pending events are read even if their stat signature looks unchanged.
      for (const p of dirtyPaths) if (files.has(p)) force.add(p);
      for (const f of this.#known.keys()) if (!files.has(f)) gone.add(f);
    } else {
      for (const p of dirtyPaths) {
        const c = this.#classify(p);
        if (!c) continue;
        if (c.ignoredIn !== undefined) {
          dirtyDirs.add(c.ignoredIn);
          continue;
        }
        const st = await statOrUndefined(p);
        if (!st) {
          gone.add(p);
          if (c.isRoot) this.#needFull = true; // records the missing root (after this reload)
        } else if (st.isDirectory()) {
          if (settled && !c.isRoot) {
            // A new directory: files may still be being written into it before its watcher exists, which no
            // event would tell. Left for the reload after the quiet period.
            this.#dirtyPaths.add(p);
            this.#slow = true;
            continue;
          }
          if (c.isRoot && this.#recursive) this.#ensureWatcher(p, true, st);
          const files = new Map<string, Stats>();
          await this.#walk(p, st, new Set(), files, new Set(), c.isRoot);
          for (const [f, fst] of files) candidates.set(f, fst);
          if (c.isRoot) this.#needFull = true; // refreshes root problems and watchers
        } else if (st.isFile() && (c.isRoot || isConfigFile(p))) {
          force.add(p);
          if (c.isRoot && this.#rootProblems.length) this.#needFull = true;
        }
      }
      // A directory with an event on a dot-file: re-check its own files by signature.
      for (const dir of dirtyDirs) {
        const c = this.#classify(dir);
        if (!c || c.ignoredIn !== undefined) continue;
        let entries: string[];
        try {
          entries = await readdir(dir);
        } catch {
          gone.add(dir);
          continue;
        }
        const present = new Set<string>();
        for (const e of entries) {
          if (isIgnoredName(e)) continue;
          const p = join(dir, e);
          const st = await statOrUndefined(p);
          if (st?.isFile() && isConfigFile(p)) {
            candidates.set(p, st);
            present.add(p);
          }
        }
        for (const f of this.#known.keys()) if (dirname(f) === dir && !present.has(f) && !this.#roots.includes(f)) gone.add(f);
      }
    }

    // Resolve what is gone into known files, and what changed into files to read.
    const removedFiles = new Set<string>();
    for (const g of gone) {
      this.#dropWatchersUnder(g);
      for (const f of this.#known.keys()) if (f === g || f.startsWith(g + sep)) removedFiles.add(f);
    }
    const toRead = new Map<string, Stats | undefined>();
    for (const f of force) toRead.set(f, undefined);
    for (const [f, st] of candidates) {
      if (!toRead.has(f) && this.#known.get(f) !== signature(st)) toRead.set(f, st);
    }
    for (const f of toRead.keys()) removedFiles.delete(f);

    const changes: UnitChange[] = [];
    const read: string[] = [];
    for (const f of [...toRead.keys()].sort()) {
      const r = await this.#readFile(f, toRead.get(f));
      if (r === 'gone') removedFiles.add(f);
      else if (r === 'deferred') continue;
      else {
        read.push(f);
        changes.push(r);
      }
    }
    if (settled && read.length > 0) {
      // Drain the events that happened meanwhile (inotify events already queued are delivered before a check
      // callback): a file written in place while it was read is left for the reload after the quiet period.
      await new Promise<void>((resolve) => setImmediate(resolve));
      for (let i = read.length - 1; i >= 0; i--) {
        const f = read[i]!;
        if (!this.#changedSince.has(f)) continue;
        read.splice(i, 1);
        changes.splice(i, 1);
        this.#known.delete(f);
        this.#dirtyPaths.add(f);
        this.#slow = true;
      }
    }
    for (const f of removedFiles) {
      this.#known.delete(f);
      this.#nonEmpty.delete(f);
      this.#emptyOnce.delete(f);
      changes.push({ unit: f, removed: true });
    }
    changes.push({ unit: PATHS_UNIT, result: { resources: [], diagnostics: [...this.#rootProblems, ...this.#watchProblems.values()] } });
    const change = this.store.apply(this.name, changes, seen);
    if (this.#needFull || this.#dirtyPaths.size || this.#dirtyDirs.size) this.#schedule();
    return { read, removed: [...removedFiles].sort(), change };
  }

  /** Reads and parses one file. */
  async #readFile(f: string, st: Stats | undefined): Promise<UnitChange | 'gone' | 'deferred'> {
    let text: string;
    try {
      st ??= await stat(f);
      if (!st.isFile()) return 'gone';
      text = await readFile(f, 'utf8');
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return 'gone';
      this.#known.delete(f); // retry on the next rescan
      const d: Diagnostic = { severity: 'Error', code: 'WFT0100', message: `cannot read ${f}: ${code ?? (e as Error).message}`, hint: 'check the file permissions', pos: { file: f, line: 1, column: 1 } };
      return { unit: f, result: { resources: [], diagnostics: [d] } };
    }
    if (text.trim() === '' && this.#nonEmpty.has(f) && !this.#emptyOnce.has(f)) {
      // Probably truncated by an editor that is about to write the new content: look again after a quiet period.
      this.#emptyOnce.add(f);
      this.#known.delete(f);
      this.#dirtyPaths.add(f);
      this.#slow = true;
      return 'deferred';
    }
    this.#emptyOnce.delete(f);
    this.#known.set(f, signature(st));
    const result = parseConfigText(text, f);
    if (!result.diagnostics.some((d) => d.severity === 'Error')) {
      if (result.resources.length) this.#nonEmpty.add(f);
      else this.#nonEmpty.delete(f);
    }
    return { unit: f, result };
  }
}

/** Reads the paths once (the same rules as a watching `DirectorySource`) and returns the resulting snapshot. */
export async function loadOnce(paths: string | readonly string[]): Promise<ConfigSnapshot> {
  const source = new DirectorySource(paths, { watch: false, rescanIntervalMs: 0, persistent: false });
  try {
    return await source.start();
  } finally {
    await source.close();
  }
}

function isIgnoredName(name: string): boolean {
  return name.startsWith('.') || name === 'node_modules';
}

function stripSep(p: string): string {
  return p.length > 1 && p.endsWith(sep) ? p.slice(0, -1) : p;
}

function signature(st: Stats): string {
  return `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;
}

async function statOrUndefined(p: string): Promise<Stats | undefined> {
  try {
    return await stat(p);
  } catch {
    return undefined;
  }
}

function missing(root: string, st: Stats | undefined): Diagnostic {
  return {
    severity: 'Error',
    code: 'WFT0100',
    message: st ? `cannot read ${root}: not a file or directory` : `cannot read ${root}: ENOENT`,
    hint: 'pass existing config files or directories; the path is watched and read once it appears',
    pos: { file: root, line: 1, column: 1 },
  };
}
