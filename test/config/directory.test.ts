// The directory source on a real filesystem (temp directories under os.tmpdir()): initial load, adds, edits,
// touches, invalid files, deletions, editor save patterns, bursts, nested directories, and clean shutdown.
// Changes are awaited with a deadline (never fixed sleeps); `rescan()` is the synchronisation point.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { mkdir, mkdtemp, open, rename, rm, unlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RawResource } from '../../src/api/source.js';
import { DirectorySource, loadOnce } from '../../src/config/directory.js';
import type { DirectorySourceOptions } from '../../src/config/directory.js';
import type { ConfigChange, ConfigSnapshot, ConfigStore } from '../../src/config/store.js';

async function tempDir(): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'weft-config-'));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** A Service document; `port` makes versions distinguishable. */
function svc(name: string, port = 80, namespace = 'default'): string {
  return `apiVersion: v1\nkind: Service\nmetadata:\n  name: ${name}\n  namespace: ${namespace}\nspec:\n  ports:\n  - port: ${port}\n`;
}

function docs(...parts: string[]): string {
  return parts.join('---\n');
}

function names(list: readonly RawResource[]): string[] {
  return list.map((r) => r.metadata.name).sort();
}

function portOf(r: RawResource | undefined): unknown {
  const spec = r?.body.spec as { ports?: Array<{ port?: unknown }> } | undefined;
  return spec?.ports?.[0]?.port;
}

interface Recorder {
  readonly events: ConfigChange[];
  /** The next change not yet consumed. */
  next(timeoutMs?: number): Promise<ConfigChange>;
  /** Consumes changes until one satisfies `pred`; returns every change consumed (the matching one last). */
  until(pred: (c: ConfigChange) => boolean, timeoutMs?: number): Promise<ConfigChange[]>;
  /**
   * Consumes every change received so far, then more until `pred` (about the store's state) holds with nothing
   * left unconsumed; returns the changes consumed.
   */
  settle(pred: () => boolean, timeoutMs?: number): Promise<ConfigChange[]>;
  stop(): void;
}

function record(store: ConfigStore): Recorder {
  const events: ConfigChange[] = [];
  let consumed = 0;
  let wake: (() => void) | undefined;
  const off = store.onChange((c) => {
    events.push(c);
    wake?.();
  });
  const next = async (timeoutMs = 10_000): Promise<ConfigChange> => {
    if (consumed < events.length) return events[consumed++] as ConfigChange;
    let timer: NodeJS.Timeout | undefined;
    try {
      await new Promise<void>((resolve, reject) => {
        wake = resolve;
        timer = setTimeout(() => reject(new Error(`no config change within ${timeoutMs} ms (had ${events.length})`)), timeoutMs);
      });
    } finally {
      wake = undefined;
      clearTimeout(timer);
    }
    return events[consumed++] as ConfigChange;
  };
  return {
    events,
    next,
    async until(pred, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      const seen: ConfigChange[] = [];
      for (;;) {
        const c = await next(Math.max(1, deadline - Date.now()));
        seen.push(c);
        if (pred(c)) return seen;
      }
    },
    async settle(pred, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      const seen: ConfigChange[] = [];
      for (;;) {
        while (consumed < events.length) seen.push(events[consumed++] as ConfigChange);
        if (pred()) return seen;
        seen.push(await next(Math.max(1, deadline - Date.now())));
      }
    },
    stop: off,
  };
}

const MODES = ['per-directory', 'recursive'] as const;
/** Recursive fs.watch is native on macOS and Windows only; Linux's emulation misses renamed files (see directory.ts). */
const NATIVE_RECURSIVE = process.platform === 'darwin' || process.platform === 'win32';

/** Starts a watching source on `paths` with the periodic rescan off, so only fs.watch events drive reloads. */
async function watching(paths: string | string[], opts: DirectorySourceOptions = {}): Promise<{ src: DirectorySource; rec: Recorder; initial: ConfigSnapshot }> {
  const src = new DirectorySource(paths, { rescanIntervalMs: 0, ...opts });
  const rec = record(src.store);
  const initial = await src.start();
  return { src, rec, initial };
}

for (const watchMode of MODES) {
  const skip = watchMode === 'recursive' && !NATIVE_RECURSIVE ? `recursive fs.watch is not native on ${process.platform}` : false;
  describe(`DirectorySource watching (${watchMode})`, { timeout: 60_000, skip }, () => {
    test('initial load, then a new file is reported as added', { timeout: 20_000 }, async () => {
      const { dir, cleanup } = await tempDir();
      await writeFile(join(dir, 'a.yaml'), docs(svc('a1'), svc('a2')));
      await writeFile(join(dir, 'b.json'), JSON.stringify({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'b' }, spec: {} }));
      const { src, rec, initial } = await watching(dir, { watchMode });
      try {
        assert.deepEqual(names(initial.resources), ['a1', 'a2', 'b']);
        assert.deepEqual(initial.diagnostics, []);
        assert.equal(initial.revision, 1);
        const first = await rec.next();
        assert.deepEqual(names(first.added), ['a1', 'a2', 'b'], 'the initial load is one change');

        await writeFile(join(dir, 'c.yml'), svc('c'));
        const c = await rec.next();
        assert.deepEqual(names(c.added), ['c']);
        assert.deepEqual(c.updated, []);
        assert.deepEqual(c.removed, []);
        assert.equal(c.revision, 2);
        assert.equal(c.added[0]?.file, join(dir, 'c.yml'));
        assert.equal(src.store.snapshot().resources.length, 4);
      } finally {
        await src.close();
        await cleanup();
      }
    });

    test('editing one document of a multi-document file updates only that resource', { timeout: 20_000 }, async () => {
      const { dir, cleanup } = await tempDir();
      const f = join(dir, 'multi.yaml');
      await writeFile(f, docs(svc('x'), svc('y'), svc('z')));
      const { src, rec } = await watching(dir, { watchMode });
      try {
        await rec.next();
        await writeFile(f, docs(svc('x'), svc('y', 8080), svc('z')));
        const c = await rec.next();
        assert.deepEqual(names(c.updated), ['y']);
        assert.equal(portOf(c.updated[0]), 8080);
        assert.deepEqual(c.added, []);
        assert.deepEqual(c.removed, []);
        assert.equal(portOf(src.store.get('/Service/default/y')), 8080);

        // Re-ordering keys and documents changes no resource: the next change must be the real edit after it.
        await writeFile(f, docs('kind: Service\napiVersion: v1\nspec:\n  ports:\n  - port: 80\nmetadata:\n  namespace: default\n  name: z\n', svc('x'), svc('y', 8080)));
        await src.rescan();
        await writeFile(f, docs(svc('x', 81), svc('y', 8080), svc('z')));
        const d = await rec.next();
        assert.deepEqual(names(d.updated), ['x']);
        assert.deepEqual([d.added.length, d.removed.length], [0, 0]);
      } finally {
        await src.close();
        await cleanup();
      }
    });

    test('touching a file without changing it produces no change', { timeout: 20_000 }, async () => {
      const { dir, cleanup } = await tempDir();
      const f = join(dir, 'a.yaml');
      await writeFile(f, svc('a'));
      const { src, rec } = await watching(dir, { watchMode });
      try {
        await rec.next();
        const later = new Date(Date.now() + 5_000);
        await utimes(f, later, later);
        await writeFile(f, svc('a')); // same content, rewritten
        await src.rescan();
        await writeFile(join(dir, 'b.yaml'), svc('b'));
        const c = await rec.next();
        assert.deepEqual(names(c.added), ['b'], 'the first change after the touch is the new file');
        assert.deepEqual([c.updated.length, c.removed.length], [0, 0]);
      } finally {
        await src.close();
        await cleanup();
      }
    });

    test('invalid YAML over a valid file keeps its resources and reports; fixing it updates', { timeout: 20_000 }, async () => {
      const { dir, cleanup } = await tempDir();
      const f = join(dir, 'a.yaml');
      await writeFile(f, docs(svc('a1'), svc('a2')));
      const { src, rec } = await watching(dir, { watchMode });
      try {
        await rec.next();
        await writeFile(f, `${svc('a1', 90)}---\napiVersion: v1\nkind: Service\nmetadata: {name: [a2\n`);
        const bad = await rec.next();
        assert.deepEqual([bad.added, bad.updated, bad.removed], [[], [], []], 'resources untouched');
        const errors = bad.diagnostics.filter((d) => d.severity === 'Error');
        assert.ok(errors.length > 0, 'the syntax error is reported');
        assert.ok(errors.every((d) => d.pos?.file === f));
        assert.match(errors[0]?.hint ?? '', /last valid version .*2 resources/);
        const snap = src.store.snapshot();
        assert.deepEqual(names(snap.resources), ['a1', 'a2']);
        assert.equal(portOf(src.store.get('/Service/default/a1')), 80, 'the old version of a1 stays');

        // A document that is not a resource is just as invalid.
        await writeFile(f, docs(svc('a1', 91), 'just: a mapping\n'));
        const stillBad = await rec.next();
        assert.deepEqual([stillBad.added, stillBad.updated, stillBad.removed], [[], [], []]);
        assert.ok(stillBad.diagnostics.some((d) => d.code === 'WFT0106' && d.severity === 'Error'));

        await writeFile(f, docs(svc('a1', 92), svc('a2')));
        const fixed = await rec.next();
        assert.deepEqual(names(fixed.updated), ['a1']);
        assert.equal(portOf(fixed.updated[0]), 92);
        assert.deepEqual(fixed.diagnostics, []);
      } finally {
        await src.close();
        await cleanup();
      }
    });

    test('deleting a file removes its resources', { timeout: 20_000 }, async () => {
      const { dir, cleanup } = await tempDir();
      await writeFile(join(dir, 'a.yaml'), docs(svc('a1'), svc('a2')));
      await writeFile(join(dir, 'b.yaml'), svc('b'));
      const { src, rec } = await watching(dir, { watchMode });
      try {
        await rec.next();
        await unlink(join(dir, 'a.yaml'));
        const c = await rec.next();
        assert.deepEqual(names(c.removed), ['a1', 'a2']);
        assert.deepEqual([c.added.length, c.updated.length], [0, 0]);
        assert.deepEqual(names(src.store.snapshot().resources), ['b']);
      } finally {
        await src.close();
        await cleanup();
      }
    });

    test('atomic rename writes and vim-style backup saves are single updates', { timeout: 20_000 }, async () => {
      const { dir, cleanup } = await tempDir();
      const f = join(dir, 'a.yaml');
      await writeFile(f, docs(svc('a1'), svc('a2')));
      const { src, rec } = await watching(dir, { watchMode });
      try {
        await rec.next();
        // write-to-temp + rename over the original (synchronous, so the steps land in one burst)
        writeFileSync(join(dir, '.a.yaml.tmp'), docs(svc('a1', 81), svc('a2')));
        renameSync(join(dir, '.a.yaml.tmp'), f);
        const c = await rec.next();
        assert.deepEqual(names(c.updated), ['a1']);
        assert.deepEqual([c.added.length, c.removed.length], [0, 0]);

        // vim with backupcopy=no: rename the original to a~ backup, write a new file, delete the backup
        renameSync(f, `${f}~`);
        writeFileSync(f, docs(svc('a1', 81), svc('a2', 82)));
        unlinkSync(`${f}~`);
        const d = await rec.next();
        assert.deepEqual(names(d.updated), ['a2']);
        assert.deepEqual([d.added.length, d.removed.length], [0, 0]);
      } finally {
        await src.close();
        await cleanup();
      }
    });

    test('a burst of 50 writes is debounced into few changes and ends in the last version', { timeout: 30_000 }, async () => {
      const { dir, cleanup } = await tempDir();
      const f = join(dir, 'burst.yaml');
      await writeFile(f, svc('b', 1000));
      const { src, rec } = await watching(dir, { watchMode, debounceMs: 250, maxWaitMs: 3_000 });
      try {
        await rec.next();
        // writes a few milliseconds apart, each one well inside the quiet period of the previous one
        for (let i = 1; i <= 50; i++) {
          await writeFile(f, svc('b', 1000 + i));
          await new Promise((r) => setTimeout(r, 5));
        }
        const seen = await rec.until((c) => c.updated.some((r) => portOf(r) === 1050));
        assert.ok(seen.length <= 10, `${seen.length} changes for 50 writes`);
        for (const c of seen) {
          assert.deepEqual([c.added.length, c.removed.length], [0, 0]);
          assert.deepEqual(c.diagnostics, []);
        }
        await src.rescan();
        assert.equal(portOf(src.store.get('/Service/default/b')), 1050);
        assert.equal(rec.events.length, seen.length + 1, 'no change after the last version');
      } finally {
        await src.close();
        await cleanup();
      }
    });

    test('nested directories: new subdirectories are watched, removed ones drop their resources', { timeout: 20_000 }, async () => {
      const { dir, cleanup } = await tempDir();
      await mkdir(join(dir, 'one', 'two'), { recursive: true });
      await writeFile(join(dir, 'one', 'two', 'deep.yaml'), svc('deep'));
      const { src, rec, initial } = await watching(dir, { watchMode });
      try {
        assert.deepEqual(names(initial.resources), ['deep']);
        await rec.next();

        await writeFile(join(dir, 'one', 'two', 'deep.yaml'), svc('deep', 8));
        assert.deepEqual(names((await rec.next()).updated), ['deep']);

        await mkdir(join(dir, 'new', 'sub'), { recursive: true });
        await writeFile(join(dir, 'new', 'sub', 'n.yaml'), svc('n1'));
        assert.deepEqual(names((await rec.next()).added), ['n1']);
        // the directory created after start is watched too
        await writeFile(join(dir, 'new', 'sub', 'm.yaml'), svc('n2'));
        assert.deepEqual(names((await rec.next()).added), ['n2']);

        await rm(join(dir, 'one'), { recursive: true });
        const gone = await rec.until((c) => c.removed.length > 0);
        assert.deepEqual(names(gone.flatMap((c) => c.removed)), ['deep']);
        assert.deepEqual(names(src.store.snapshot().resources), ['n1', 'n2']);
      } finally {
        await src.close();
        await cleanup();
      }
    });

    test('a directory deleted and re-created under the same name in one burst is watched again', { timeout: 20_000 }, async () => {
      // The file system usually hands the new directory the inode number of the deleted one.
      const { dir, cleanup } = await tempDir();
      await mkdir(join(dir, 'new', 'sub'), { recursive: true });
      await writeFile(join(dir, 'new', 'sub', 'n.yaml'), svc('n'));
      const { src, rec } = await watching(dir, { watchMode });
      try {
        await rec.next();
        rmSync(join(dir, 'new'), { recursive: true });
        mkdirSync(join(dir, 'new'));
        writeFileSync(join(dir, 'new', 'again.yaml'), svc('again'));
        const c = await rec.next();
        assert.deepEqual([names(c.added), names(c.removed)], [['again'], ['n']]);
        await writeFile(join(dir, 'new', 'again.yaml'), svc('again', 9));
        const upd = await rec.next();
        assert.deepEqual(names(upd.updated), ['again']);
      } finally {
        await src.close();
        await cleanup();
      }
    });

    test('a resource moving to another file is an update, not remove + add', { timeout: 20_000 }, async () => {
      const { dir, cleanup } = await tempDir();
      await writeFile(join(dir, 'a.yaml'), docs(svc('mover'), svc('stay')));
      const { src, rec } = await watching(dir, { watchMode });
      try {
        await rec.next();
        writeFileSync(join(dir, 'b.yaml'), svc('mover'));
        writeFileSync(join(dir, 'a.yaml'), svc('stay'));
        const c = await rec.next();
        assert.deepEqual(names(c.updated), ['mover']);
        assert.equal(c.updated[0]?.file, join(dir, 'b.yaml'));
        assert.deepEqual([c.added.length, c.removed.length], [0, 0]);
        assert.deepEqual(c.diagnostics, []);

        // renaming the file moves everything in it
        renameSync(join(dir, 'b.yaml'), join(dir, 'c.yaml'));
        const d = await rec.next();
        assert.deepEqual(names(d.updated), ['mover']);
        assert.deepEqual([d.added.length, d.removed.length], [0, 0]);
      } finally {
        await src.close();
        await cleanup();
      }
    });

    test('dot-files, editor leftovers and other extensions are ignored', { timeout: 20_000 }, async () => {
      const { dir, cleanup } = await tempDir();
      const { src, rec } = await watching(dir, { watchMode });
      try {
        for (const n of ['.hidden.yaml', '.a.yaml.swp', 'a.yaml~', '#a.yaml#', 'notes.txt', '4913', 'a.yaml.tmp']) await writeFile(join(dir, n), svc(`ignored-${n}`));
        await mkdir(join(dir, '.git'));
        await writeFile(join(dir, '.git', 'x.yaml'), svc('in-dot-dir'));
        await mkdir(join(dir, 'node_modules'));
        await writeFile(join(dir, 'node_modules', 'x.yaml'), svc('in-node-modules'));
        await src.rescan();
        await writeFile(join(dir, 'real.yaml'), svc('real'));
        const c = await rec.next();
        assert.deepEqual(names(c.added), ['real']);
        assert.deepEqual(names(src.store.snapshot().resources), ['real']);
      } finally {
        await src.close();
        await cleanup();
      }
    });

    test('a single file path is watched across atomic renames', { timeout: 20_000 }, async () => {
      const { dir, cleanup } = await tempDir();
      const f = join(dir, 'mesh.conf'); // an explicit file is read whatever its extension
      await writeFile(f, svc('one'));
      await writeFile(join(dir, 'other.yaml'), svc('not-watched'));
      const { src, rec, initial } = await watching(f, { watchMode });
      try {
        assert.deepEqual(names(initial.resources), ['one']);
        await rec.next();
        writeFileSync(join(dir, 'mesh.conf.new'), svc('one', 7));
        renameSync(join(dir, 'mesh.conf.new'), f);
        const c = await rec.next();
        assert.deepEqual(names(c.updated), ['one']);
        await writeFile(join(dir, 'other.yaml'), svc('still-not-watched'));
        await unlink(f);
        const d = await rec.next();
        assert.deepEqual(names(d.removed), ['one']);
        assert.deepEqual(d.added, []);
      } finally {
        await src.close();
        await cleanup();
      }
    });
  });
}

describe('DirectorySource rules', { timeout: 60_000 }, () => {
  test('two files defining the same resource: the first in path order wins, the other is reported', { timeout: 20_000 }, async () => {
    const { dir, cleanup } = await tempDir();
    await mkdir(join(dir, 'a'));
    await writeFile(join(dir, 'a', 'z.yaml'), svc('dup', 1));
    await writeFile(join(dir, 'a.yaml'), svc('dup', 2));
    await writeFile(join(dir, 'b.yaml'), svc('dup', 3, 'default'));
    const { src, rec, initial } = await watching(dir);
    try {
      // path order compares segment by segment: a/z.yaml < a.yaml < b.yaml
      assert.equal(initial.resources.length, 1);
      assert.equal(portOf(initial.resources[0]), 1);
      const dups = initial.diagnostics.filter((d) => d.code === 'WFT1009');
      assert.deepEqual(dups.map((d) => d.pos?.file), [join(dir, 'a.yaml'), join(dir, 'b.yaml')]);
      assert.ok(dups.every((d) => d.severity === 'Error' && d.message.includes(`${join(dir, 'a', 'z.yaml')}:1`)));
      await rec.next();

      await rm(join(dir, 'a'), { recursive: true });
      const c = await rec.next();
      assert.deepEqual(names(c.updated), ['dup'], 'the next definition takes over as an update');
      assert.equal(portOf(c.updated[0]), 2);
      assert.deepEqual([c.added.length, c.removed.length], [0, 0]);
      assert.equal(c.diagnostics.filter((d) => d.code === 'WFT1009').length, 1);
    } finally {
      await src.close();
      await cleanup();
    }
  });

  test('truncate-then-write: an empty read is confirmed before resources are dropped', { timeout: 20_000 }, async () => {
    const { dir, cleanup } = await tempDir();
    const f = join(dir, 'a.yaml');
    await writeFile(f, docs(svc('a1'), svc('a2')));
    const { src, rec } = await watching(dir, { debounceMs: 300 });
    try {
      await rec.next();
      const fh = await open(f, 'w'); // truncates
      const r = await src.rescan(); // a reload between the truncation and the write
      assert.deepEqual(r.read, [], 'the empty file is not taken yet');
      assert.equal(r.change, undefined);
      await fh.writeFile(docs(svc('a1'), svc('a2', 99)));
      await fh.close();
      const c = await rec.next();
      assert.deepEqual(names(c.updated), ['a2']);
      assert.deepEqual([c.added.length, c.removed.length], [0, 0]);

      // a file that stays empty does lose its resources
      await writeFile(f, '');
      const d = await rec.next();
      assert.deepEqual(names(d.removed), ['a1', 'a2']);
    } finally {
      await src.close();
      await cleanup();
    }
  });

  const LINUX_ONLY = process.platform === 'linux' ? false : 'settled reloads use inotify event kinds (Linux only)';

  test('an atomic save (write elsewhere, rename into place) is reloaded without waiting for the quiet period', { timeout: 30_000, skip: LINUX_ONLY }, async () => {
    const { dir, cleanup } = await tempDir();
    const f = join(dir, 'a.yaml');
    await writeFile(f, docs(svc('a1'), svc('a2')));
    // A quiet period far longer than the test's deadline: only a settled reload can make the change in time.
    const { src, rec } = await watching(dir, { debounceMs: 120_000, maxWaitMs: 120_000 });
    try {
      await rec.next();
      await writeFile(join(dir, '.a.yaml.tmp'), docs(svc('a1'), svc('a2', 99)));
      const renamed = Date.now();
      await rename(join(dir, '.a.yaml.tmp'), f);
      const c = await rec.next(20_000);
      assert.deepEqual(names(c.updated), ['a2']);
      // When the change was seen: its file events, before the file was read.
      assert.ok(c.seen && c.seen.first <= c.seen.last && c.seen.first >= renamed - 1000 && c.seen.last <= Date.now(), JSON.stringify(c.seen));
      assert.equal(portOf(c.updated[0]), 99);
      assert.deepEqual([c.added.length, c.removed.length, c.diagnostics.length], [0, 0, 0]);
      // A removal is whole too.
      await unlink(f);
      const d = await rec.next(20_000);
      assert.deepEqual(names(d.removed), ['a1', 'a2']);
    } finally {
      await src.close();
      await cleanup();
    }
  });

  test('a file created and then written in place is taken only once complete', { timeout: 30_000, skip: LINUX_ONLY }, async () => {
    const { dir, cleanup } = await tempDir();
    await writeFile(join(dir, 'other.yaml'), svc('o'));
    const { src, rec } = await watching(dir, { debounceMs: 2_000, maxWaitMs: 20_000 });
    try {
      await rec.next();
      const f = join(dir, 'new.yaml');
      const full = docs(svc('x1'), svc('x2', 81));
      const cut = full.indexOf('kind', full.indexOf('---'));
      const fh = await open(f, 'wx'); // created (a rename event): its creation alone may be read, empty
      try {
        await new Promise((r) => setTimeout(r, 50));
        await fh.write(full.slice(0, cut)); // the first document and half of the second
        await new Promise((r) => setTimeout(r, 50));
        await fh.write(full.slice(cut));
      } finally {
        await fh.close();
      }
      const seen = await rec.until((c) => c.added.some((r) => r.metadata.name === 'x2'), 20_000);
      for (const c of seen) {
        assert.deepEqual(c.diagnostics, [], 'no half-written document was read');
        assert.deepEqual([c.updated.length, c.removed.length], [0, 0]);
      }
      assert.deepEqual(seen.flatMap((c) => names(c.added)), ['x1', 'x2'], 'both documents arrive together');
    } finally {
      await src.close();
      await cleanup();
    }
  });

  test('re-reading an unchanged file reports nothing (rescan only, no watcher)', { timeout: 20_000 }, async () => {
    const { dir, cleanup } = await tempDir();
    const f = join(dir, 'a.yaml');
    await writeFile(f, svc('a'));
    const src = new DirectorySource(dir, { watch: false, rescanIntervalMs: 0 });
    const rec = record(src.store);
    try {
      await src.start();
      await rec.next();
      const untouched = await src.rescan();
      assert.deepEqual(untouched.read, [], 'unchanged stat signature: not read again');
      const later = new Date(Date.now() + 5_000);
      await utimes(f, later, later);
      const touched = await src.rescan();
      assert.deepEqual(touched.read, [f], 'a touched file is read again');
      assert.equal(touched.change, undefined);
      assert.equal(rec.events.length, 1);
      assert.equal(src.store.revision, 1);
    } finally {
      await src.close();
      await cleanup();
    }
  });

  test('the periodic rescan alone picks up changes', { timeout: 20_000 }, async () => {
    const { dir, cleanup } = await tempDir();
    await writeFile(join(dir, 'a.yaml'), svc('a'));
    const src = new DirectorySource(dir, { watch: false, rescanIntervalMs: 50 });
    const rec = record(src.store);
    try {
      await src.start();
      await rec.next();
      await writeFile(join(dir, 'a.yaml'), svc('a', 1));
      await writeFile(join(dir, 'b.yaml'), svc('b'));
      const seen = await rec.settle(() => src.store.snapshot().resources.length === 2 && portOf(src.store.get('/Service/default/a')) === 1);
      assert.deepEqual(names(seen.flatMap((c) => c.added)), ['b']);
      await unlink(join(dir, 'a.yaml'));
      const gone = await rec.until((c) => c.removed.length > 0);
      assert.deepEqual(names(gone.flatMap((c) => c.removed)), ['a']);
    } finally {
      await src.close();
      await cleanup();
    }
  });

  test('a missing path is reported, then read once it appears', { timeout: 20_000 }, async () => {
    const { dir, cleanup } = await tempDir();
    const cfg = join(dir, 'later');
    const { src, rec, initial } = await watching(cfg);
    try {
      assert.deepEqual(initial.resources, []);
      assert.equal(initial.diagnostics.length, 1);
      assert.equal(initial.diagnostics[0]?.severity, 'Error');
      assert.match(initial.diagnostics[0]?.message ?? '', /ENOENT/);
      await rec.next();
      await mkdir(cfg);
      await writeFile(join(cfg, 'a.yaml'), svc('a'));
      await rec.settle(() => src.store.get('/Service/default/a') !== undefined && src.store.snapshot().diagnostics.length === 0);
      await writeFile(join(cfg, 'b.yaml'), svc('b'));
      const c = await rec.until((x) => x.added.length > 0);
      assert.deepEqual(names(c.flatMap((x) => x.added)), ['b']);
    } finally {
      await src.close();
      await cleanup();
    }
  });

  test('a file that has never been valid contributes nothing', { timeout: 20_000 }, async () => {
    const { dir, cleanup } = await tempDir();
    await writeFile(join(dir, 'bad.yaml'), docs(svc('ok-in-bad-file'), 'apiVersion: v1\nkind: Service\n'));
    await writeFile(join(dir, 'good.yaml'), svc('good'));
    try {
      const snap = await loadOnce(dir);
      assert.deepEqual(names(snap.resources), ['good']);
      assert.ok(snap.diagnostics.some((d) => d.severity === 'Error' && d.pos?.file === join(dir, 'bad.yaml')));
      assert.ok(!snap.diagnostics.some((d) => /last valid version/.test(d.hint ?? '')), 'nothing is kept');
    } finally {
      await cleanup();
    }
  });

  test('loadOnce reads several paths and leaves nothing running', { timeout: 20_000 }, async () => {
    const { dir, cleanup } = await tempDir();
    await mkdir(join(dir, 'd'));
    await writeFile(join(dir, 'd', 'a.yaml'), svc('a'));
    await writeFile(join(dir, 'single.yaml'), svc('s'));
    try {
      const snap = await loadOnce([join(dir, 'd'), join(dir, 'single.yaml')]);
      assert.deepEqual(names(snap.resources), ['a', 's']);
      assert.deepEqual(snap.diagnostics, []);
      assert.equal(snap.revision, 1);
    } finally {
      await cleanup();
    }
  });

  test('close() stops every watcher and timer: a process using a source exits on its own', { timeout: 30_000 }, async () => {
    const { dir, cleanup } = await tempDir();
    try {
      await mkdir(join(dir, 'cfg', 'sub'), { recursive: true });
      await writeFile(join(dir, 'cfg', 'sub', 'a.yaml'), svc('a'));
      const moduleUrl = new URL('../../src/config/directory.js', import.meta.url).href;
      const script = `
        import { DirectorySource } from ${JSON.stringify(moduleUrl)};
        import { writeFile } from 'node:fs/promises';
        const cfg = ${JSON.stringify(join(dir, 'cfg'))};
        for (const watchMode of ['per-directory', 'recursive']) {
          const src = new DirectorySource(cfg, { watchMode, rescanIntervalMs: 50 });
          const changed = new Promise((resolve) => src.store.onChange(resolve));
          await src.start();
          await changed;
          const next = new Promise((resolve) => src.store.onChange(resolve));
          await writeFile(cfg + '/sub/b.yaml', 'apiVersion: v1\\nkind: Service\\nmetadata: {name: b-' + watchMode + '}\\n');
          await next;
          await writeFile(cfg + '/sub/c.yaml', 'apiVersion: v1\\nkind: Service\\nmetadata: {name: c}\\n'); // pending at close
          await src.close();
          console.log(watchMode, src.store.snapshot().resources.length);
        }
      `;
      const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout.on('data', (b: Buffer) => (out += b.toString()));
      child.stderr.on('data', (b: Buffer) => (err += b.toString()));
      const killer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      const [code, signal] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null];
      clearTimeout(killer);
      assert.equal(signal, null, `the process had to be killed: still running after close(); stderr: ${err}`);
      assert.equal(code, 0, err);
      assert.match(out, /^per-directory \d+\nrecursive \d+\n$/);
    } finally {
      await cleanup();
    }
  });
});
