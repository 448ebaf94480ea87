// ConfigStore: identities, exact change sets, the keep-last-valid rule, duplicates and listener behaviour.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { validateResources } from '../../src/api/build.js';
import { allKinds } from '../../src/api/kinds/registry.js';
import { parseConfigText } from '../../src/api/source.js';
import type { ParseResult } from '../../src/api/source.js';
import { ConfigStore, resourceKey } from '../../src/config/store.js';
import type { ConfigChange } from '../../src/config/store.js';

function parse(file: string, ...docs: string[]): ParseResult {
  return parseConfigText(docs.join('---\n'), file);
}

function svc(name: string, extra = '', ns?: string): string {
  return `apiVersion: v1\nkind: Service\nmetadata:\n  name: ${name}\n${ns ? `  namespace: ${ns}\n` : ''}spec:\n  ports:\n  - port: 80\n${extra}`;
}

function names(list: ReadonlyArray<{ metadata: { name: string } }>): string[] {
  return list.map((r) => r.metadata.name).sort();
}

function collect(store: ConfigStore): ConfigChange[] {
  const out: ConfigChange[] = [];
  store.onChange((c) => out.push(c));
  return out;
}

test('resourceKey is group/Kind/namespace/name with the namespace defaulted as build.ts does', (t) => {
  const [a, b, c] = parse('k.yaml', svc('x'), svc('x', '', 'default'), 'apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r, namespace: shop}\nspec: {}\n').resources;
  assert.equal(resourceKey(a!), '/Service/default/x');
  assert.equal(resourceKey(b!), '/Service/default/x');
  assert.equal(resourceKey(c!), 'networking.istio.io/VirtualService/shop/r');
  const clusterScoped = allKinds.find((k) => !k.namespaced);
  if (!clusterScoped) {
    t.diagnostic('no cluster-scoped kind registered yet: the cluster-scoped case is not checked');
    return;
  }
  const apiVersion = clusterScoped.group ? `${clusterScoped.group}/${clusterScoped.versions[0]}` : clusterScoped.versions[0];
  const [n] = parse('n.yaml', `apiVersion: ${apiVersion}\nkind: ${clusterScoped.kind}\nmetadata: {name: n, namespace: ignored}\n`).resources;
  assert.equal(resourceKey(n!), `${clusterScoped.group}/${clusterScoped.kind}//n`);
});

test('resourceKey agrees with the key validateResources gives each resource', () => {
  const raws = parse(
    'k.yaml',
    svc('a'),
    svc('b', '', 'shop'),
    'apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n',
    'apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: dr}\nspec: {host: a}\n',
  ).resources;
  const { resources } = validateResources(raws);
  assert.ok(resources.length >= 3, `validated ${resources.length} of ${raws.length}`);
  for (const r of resources) assert.equal(resourceKey(r), r.key);
});

test('apply reports exactly the added, updated and removed resources, and bumps the revision', () => {
  const store = new ConfigStore();
  const events = collect(store);
  const first = store.apply('files', [{ unit: 'a.yaml', result: parse('a.yaml', svc('x'), svc('y')) }]);
  assert.deepEqual(names(first!.added), ['x', 'y']);
  assert.equal(first!.revision, 1);
  assert.equal(store.revision, 1);

  // same content, keys in another order, documents swapped: nothing changed
  const reordered = 'spec:\n  ports:\n  - port: 80\nmetadata:\n  name: x\nkind: Service\napiVersion: v1\n';
  assert.equal(store.apply('files', [{ unit: 'a.yaml', result: parse('a.yaml', svc('y'), reordered) }]), undefined);
  assert.equal(store.revision, 1);

  const second = store.apply('files', [{ unit: 'a.yaml', result: parse('a.yaml', svc('x', '  type: ClusterIP\n'), svc('z')) }]);
  assert.deepEqual(names(second!.updated), ['x']);
  assert.deepEqual(names(second!.added), ['z']);
  assert.deepEqual(names(second!.removed), ['y']);
  assert.equal(second!.revision, 2);
  assert.equal(events.length, 2);
  assert.deepEqual(events, [first, second]);

  const snap = store.snapshot();
  assert.deepEqual(names(snap.resources), ['x', 'z']);
  assert.equal(snap.revision, 2);
  assert.equal((store.get('/Service/default/x')?.body.spec as { type?: string }).type, 'ClusterIP');
});

test('a unit with errors keeps its last valid resources; a never-valid unit contributes none', () => {
  const store = new ConfigStore();
  store.apply('files', [{ unit: 'a.yaml', result: parse('a.yaml', svc('x'), svc('y')) }]);
  const broken = store.apply('files', [
    { unit: 'a.yaml', result: parse('a.yaml', svc('x', '  type: NodePort\n'), 'kind: [') },
    { unit: 'b.yaml', result: parse('b.yaml', svc('b'), 'metadata: {}\n') },
  ]);
  assert.ok(broken);
  assert.deepEqual([broken.added, broken.updated, broken.removed], [[], [], []]);
  const files = broken.diagnostics.map((d) => d.pos?.file);
  assert.ok(files.includes('a.yaml') && files.includes('b.yaml'));
  const aErr = broken.diagnostics.find((d) => d.pos?.file === 'a.yaml');
  assert.match(aErr?.hint ?? '', /last valid version of a\.yaml \(2 resources\)/);
  const bErr = broken.diagnostics.find((d) => d.pos?.file === 'b.yaml');
  assert.doesNotMatch(bErr?.hint ?? '', /last valid version/);
  assert.deepEqual(names(store.snapshot().resources), ['x', 'y']);

  // the same errors again: nothing new to say
  assert.equal(store.apply('files', [{ unit: 'a.yaml', result: parse('a.yaml', svc('x', '  type: NodePort\n'), 'kind: [') }]), undefined);

  const fixed = store.apply('files', [{ unit: 'a.yaml', result: parse('a.yaml', svc('x', '  type: NodePort\n')) }]);
  assert.deepEqual(names(fixed!.updated), ['x']);
  assert.deepEqual(names(fixed!.removed), ['y']);
  assert.ok(fixed!.diagnostics.every((d) => d.pos?.file === 'b.yaml'), 'a.yaml diagnostics cleared; b.yaml still broken');
});

test('duplicates: the first unit in path order wins; removing it promotes the next as an update', () => {
  const store = new ConfigStore();
  const c = store.apply('files', [
    { unit: 'b.yaml', result: parse('b.yaml', svc('d', '  type: B\n')) },
    { unit: 'a/z.yaml', result: parse('a/z.yaml', svc('d', '  type: AZ\n', 'default')) },
    { unit: 'a.yaml', result: parse('a.yaml', svc('d', '  type: A\n')) },
  ]);
  assert.equal(c!.added.length, 1);
  assert.equal(c!.added[0]?.file, 'a/z.yaml');
  const dups = c!.diagnostics.filter((d) => d.code === 'WFT1009');
  assert.deepEqual(dups.map((d) => d.pos?.file), ['a.yaml', 'b.yaml']);
  assert.deepEqual(dups[0]?.resource, { kind: 'Service', namespace: 'default', name: 'd' });
  assert.equal(dups[0]?.path, 'metadata.name');

  const next = store.apply('files', [{ unit: 'a/z.yaml', removed: true }]);
  assert.deepEqual(next!.updated.map((r) => r.file), ['a.yaml']);
  assert.deepEqual([next!.added.length, next!.removed.length], [0, 0]);

  // a duplicate inside one file: the first document wins
  const store2 = new ConfigStore();
  const one = store2.apply('files', [{ unit: 'x.yaml', result: parse('x.yaml', svc('d', '  type: first\n'), svc('d', '  type: second\n')) }]);
  assert.equal((one!.added[0]?.body.spec as { type: string }).type, 'first');
  assert.equal(one!.diagnostics.filter((d) => d.code === 'WFT1009').length, 1);
  assert.equal(one!.diagnostics[0]?.pos?.line, 13);
});

test('sources keep their own units and rank in the order they first fed the store', () => {
  const store = new ConfigStore();
  store.apply('files', [{ unit: 'z.yaml', result: parse('z.yaml', svc('s', '  type: files\n')) }]);
  const c = store.apply('kubernetes', [{ unit: 'a.yaml', result: parse('a.yaml', svc('s', '  type: kube\n'), svc('k')) }]);
  assert.deepEqual(names(c!.added), ['k']);
  assert.equal(c!.updated.length, 0, 'the earlier source wins');
  // the same unit name in another source is another unit
  const r = store.apply('files', [{ unit: 'a.yaml', removed: true }]);
  assert.equal(r, undefined);
  assert.equal(store.snapshot().resources.length, 2);
});

test('a moved resource is an update only when its body or file changed', () => {
  const store = new ConfigStore();
  store.apply('files', [{ unit: 'a.yaml', result: parse('a.yaml', svc('m')) }]);
  const moved = store.apply('files', [
    { unit: 'a.yaml', removed: true },
    { unit: 'b.yaml', result: parse('b.yaml', svc('m')) },
  ]);
  assert.deepEqual(moved!.updated.map((r) => r.file), ['b.yaml']);
  assert.deepEqual([moved!.added.length, moved!.removed.length], [0, 0]);
  // shifted within its file (a document inserted above): same body, same file, no change
  assert.equal(store.apply('files', [{ unit: 'b.yaml', result: parse('b.yaml', svc('other'), svc('m')) }])?.updated.length, 0);
  assert.equal(store.get('/Service/default/m')?.doc, 1, 'the snapshot still has the current position');
});

test('listeners: unsubscribe works, and a throwing listener does not stop the others', () => {
  const errors: unknown[] = [];
  const store = new ConfigStore({ onListenerError: (e) => errors.push(e) });
  const seen: number[] = [];
  const offBad = store.onChange(() => {
    throw new Error('listener bug');
  });
  const off = store.onChange((c) => seen.push(c.revision));
  store.apply('files', [{ unit: 'a.yaml', result: parse('a.yaml', svc('a')) }]);
  assert.deepEqual(seen, [1]);
  assert.equal((errors[0] as Error | undefined)?.message, 'listener bug');
  assert.deepEqual(names(store.snapshot().resources), ['a'], 'the store state is complete');
  offBad();
  off();
  store.apply('files', [{ unit: 'a.yaml', removed: true }]);
  assert.deepEqual(seen, [1]);
  assert.equal(errors.length, 1);
  assert.equal(store.revision, 2);
});

test('edits to existing files give what a full recomputation gives: changes, order, duplicates, diagnostics', () => {
  // Each step is applied to a store that has seen every step before (edits of files it knows are applied
  // incrementally) and, at once, to a fresh store (a full recomputation over every file): the resources in
  // effect (in order) and the diagnostics must agree, and the edit's change must be what differs.
  const files = new Map<string, string[]>([
    ['a.yaml', [svc('a1'), svc('a2')]],
    ['b.yaml', [svc('b1')]],
    ['c/c.yaml', [svc('c1'), svc('c2', '  type: X\n')]],
  ]);
  const store = new ConfigStore();
  const changes = collect(store);
  store.apply('files', [...files].map(([unit, docs]) => ({ unit, result: parse(unit, ...docs) })));
  const steps: Array<{ edit: [string, string[]]; added: string[]; updated: string[]; removed: string[]; dups: number }> = [
    // a body edited
    { edit: ['b.yaml', [svc('b1', '  type: Y\n')]], added: [], updated: ['b1'], removed: [], dups: 0 },
    // a resource renamed and one added, in the middle of the order
    { edit: ['a.yaml', [svc('a0'), svc('a2'), svc('a3')]], added: ['a0', 'a3'], updated: [], removed: ['a1'], dups: 0 },
    // c/c.yaml now defines b1 too: the earlier file (b.yaml) keeps it; the duplicate is reported
    { edit: ['c/c.yaml', [svc('c1'), svc('b1', '  type: Z\n')]], added: [], updated: [], removed: ['c2'], dups: 1 },
    // and a.yaml as well, ahead of b.yaml in the order: it takes b1 over
    { edit: ['a.yaml', [svc('a0'), svc('b1', '  type: W\n')]], added: [], updated: ['b1'], removed: ['a2', 'a3'], dups: 2 },
    // both duplicates gone again: b.yaml's b1 is back in effect
    { edit: ['a.yaml', [svc('a0')]], added: [], updated: ['b1'], removed: [], dups: 1 },
    { edit: ['c/c.yaml', [svc('c1')]], added: [], updated: [], removed: [], dups: 0 },
  ];
  for (const step of steps) {
    const [unit, docs] = step.edit;
    files.set(unit, docs);
    const before = changes.length;
    store.apply('files', [{ unit, result: parse(unit, ...docs) }]);
    const fresh = new ConfigStore();
    fresh.apply('files', [...files].map(([u, d]) => ({ unit: u, result: parse(u, ...d) })));
    const got = store.snapshot();
    const want = fresh.snapshot();
    const label = `after editing ${unit} to ${docs.length} document(s)`;
    assert.deepEqual(got.resources.map((r) => `${r.file}:${r.metadata.name}`), want.resources.map((r) => `${r.file}:${r.metadata.name}`), label);
    assert.deepEqual(got.diagnostics.map((d) => `${d.code} ${d.pos?.file}:${d.pos?.line}`), want.diagnostics.map((d) => `${d.code} ${d.pos?.file}:${d.pos?.line}`), label);
    assert.equal(got.diagnostics.filter((d) => d.code === 'WFT1009').length, step.dups, label);
    // One change per edit (the last one only takes a duplicate diagnostic away).
    assert.equal(changes.length, before + 1, label);
    const c = changes[before]!;
    assert.deepEqual([names(c.added), names(c.updated), names(c.removed)], [step.added, step.updated, step.removed], label);
  }
  // A file with a syntax error keeps its last valid resources, with the error reported.
  const kept = store.snapshot().resources.map((r) => `${r.file}:${r.metadata.name}`);
  const n = changes.length;
  store.apply('files', [{ unit: 'b.yaml', result: parse('b.yaml', 'kind: [') }]);
  assert.equal(changes.length, n + 1, 'the diagnostics changed');
  assert.deepEqual([changes[n]!.added.length, changes[n]!.updated.length, changes[n]!.removed.length], [0, 0, 0]);
  assert.deepEqual(store.snapshot().resources.map((r) => `${r.file}:${r.metadata.name}`), kept);
  assert.ok(store.snapshot().diagnostics.some((d) => d.severity === 'Error' && d.pos?.file === 'b.yaml'));
  files.set('b.yaml', ['kind: [']);
  // Re-applying what the store already has changes nothing.
  const before = changes.length;
  assert.equal(store.apply('files', [...files].map(([unit, docs]) => ({ unit, result: parse(unit, ...docs) }))), undefined);
  assert.equal(changes.length, before);
});

test('a change is in place when every changed unit defines the same identities in the same order', () => {
  const store = new ConfigStore();
  const first = store.apply('files', [
    { unit: 'a.yaml', result: parse('a.yaml', svc('x'), svc('y')) },
    { unit: 'b.yaml', result: parse('b.yaml', svc('z')) },
  ]);
  assert.equal(first!.inPlace, false, 'resources appeared');
  const edit = store.apply('files', [{ unit: 'a.yaml', result: parse('a.yaml', svc('x', '  - port: 81\n'), svc('y')) }]);
  assert.equal(edit!.inPlace, true);
  assert.deepEqual(names(edit!.updated), ['x']);
  assert.deepEqual([edit!.added, edit!.removed], [[], []]);
  const swapped = store.apply('files', [{ unit: 'a.yaml', result: parse('a.yaml', svc('y'), svc('x', '  - port: 82\n')) }]);
  assert.equal(swapped!.inPlace, false, 'x and y changed places');
  assert.deepEqual(names(swapped!.updated), ['x']);
  const grown = store.apply('files', [{ unit: 'a.yaml', result: parse('a.yaml', svc('y'), svc('x', '  - port: 82\n'), svc('w')) }]);
  assert.equal(grown!.inPlace, false);
  assert.deepEqual(names(grown!.added), ['w']);
  const newUnit = store.apply('files', [{ unit: 'c.yaml', result: parse('c.yaml', svc('v')) }]);
  assert.equal(newUnit!.inPlace, false);
  const again = store.apply('files', [{ unit: 'c.yaml', result: parse('c.yaml', svc('v', '  - port: 81\n')) }]);
  assert.equal(again!.inPlace, true);
  assert.equal(store.size, store.snapshot().resources.length);
  assert.equal(store.size, 5);
});

