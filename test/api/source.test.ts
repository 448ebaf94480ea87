// Reading config text into raw resources with source positions, and the generic validation steps of build.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfigPaths, parseConfigText } from '../../src/api/source.js';
import { validateResources, resolveHost } from '../../src/api/build.js';

const svc = (name: string, ns = 'default') => `apiVersion: v1
kind: Service
metadata:
  name: ${name}
  namespace: ${ns}
spec:
  ports:
  - name: http
    port: 80
`;

test('multi-document YAML yields one resource per document with positions', () => {
  const text = `${svc('a')}---\n${svc('b')}---\n# only a comment\n---\n`;
  const r = parseConfigText(text, 'x.yaml');
  assert.deepEqual(r.diagnostics, []);
  assert.deepEqual(r.resources.map((x) => x.metadata.name), ['a', 'b']);
  assert.deepEqual(r.resources.map((x) => x.doc), [0, 1]);
  const b = r.resources[1]!;
  assert.deepEqual(b.pos, { file: 'x.yaml', line: 11, column: 1 });
  // a key's position for the last path segment, the nearest parent for paths that do not exist
  assert.deepEqual(b.locate(['spec', 'ports', 0, 'port']), { file: 'x.yaml', line: 19, column: 5 });
  assert.deepEqual(b.locate(['spec', 'ports', 0, 'nope', 'deeper']), { file: 'x.yaml', line: 18, column: 5 });
});

test('positions: List items, nested sequences and flow mappings, numeric keys, paths that do not exist', () => {
  const text = [
    'apiVersion: v1',
    'kind: List',
    'items:',
    '- apiVersion: v1',
    '  kind: Service',
    '  metadata:',
    '    name: a',
    '  spec:',
    '    ports:',
    '    - port: 80',
    '      name: http',
    '    - port: 81',
    '    selector: {app: a, 8080: x}',
    '---',
    'apiVersion: v1',
    'kind: Service',
    'metadata: {name: b}',
    '',
  ].join('\n');
  const r = parseConfigText(text, 'p.yaml');
  assert.deepEqual(r.diagnostics, []);
  const [a, b] = r.resources;
  const at = (line: number, column: number) => ({ file: 'p.yaml', line, column });
  assert.deepEqual(a!.pos, at(4, 3), 'a List item starts at its mapping');
  assert.deepEqual(a!.locate([]), at(4, 3));
  assert.deepEqual(a!.locate(['metadata', 'name']), at(7, 5));
  assert.deepEqual(a!.locate(['spec', 'ports', 1, 'port']), at(12, 7));
  assert.deepEqual(a!.locate(['spec', 'ports', 0, 'nope']), at(10, 7), 'missing key: the mapping it was looked up in');
  assert.deepEqual(a!.locate(['spec', 'ports', 5]), at(10, 5), 'index out of range: the sequence');
  assert.deepEqual(a!.locate(['spec', 'ports', 'x']), at(10, 5), 'a name on a sequence: the sequence');
  assert.deepEqual(a!.locate(['spec', 'selector', 8080]), at(13, 24), 'a numeric key matches its text');
  assert.deepEqual(a!.locate(['spec', 'selector', 'app', 'deeper']), at(13, 21), 'below a scalar: the scalar');
  assert.deepEqual(b!.pos, at(15, 1));
  assert.deepEqual(b!.locate(['metadata', 'name']), at(17, 12));
  assert.deepEqual(b!.locate(['metadata']), at(17, 1));
  assert.deepEqual(b!.locate(['spec', 'ports']), at(15, 1), 'nothing found: the document');
});

test('JSON documents and kubectl Lists are read', () => {
  const json = JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'n1' } },
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'n2' } },
  ] }, null, 2);
  const r = parseConfigText(json, 'l.json');
  assert.deepEqual(r.diagnostics, []);
  assert.deepEqual(r.resources.map((x) => x.metadata.name), ['n1', 'n2']);
  assert.equal(r.resources[1]!.pos.line, 12);
});

test('syntax errors and non-resources are reported with positions, valid documents still load', () => {
  const text = `${svc('ok')}---\nkind: Service\nmetadata: {name: 3}\n---\nfoo: [\n---\n- just\n- a list\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: dup\n  dup: 1\n  dup: 2\n`;
  const r = parseConfigText(text, 'bad.yaml');
  assert.deepEqual(r.resources.map((x) => x.metadata.name), ['ok']);
  const msgs = r.diagnostics.map((d) => `${d.code} ${d.pos?.line}:${d.pos?.column} ${d.message}`);
  assert.ok(msgs.some((m) => m.startsWith('WFT0106 11:1 missing or non-string apiVersion')), msgs.join('\n'));
  assert.ok(msgs.some((m) => m.startsWith('WFT0106 12:12 missing or non-string metadata.name')), msgs.join('\n'));
  assert.ok(msgs.some((m) => /^WFT0100 1[45]:\d+ YAML syntax error/.test(m)), msgs.join('\n'));
  assert.ok(msgs.some((m) => m.startsWith('WFT0100 16:1 document is not a mapping')), msgs.join('\n'));
  assert.ok(msgs.some((m) => m.startsWith('WFT0100') && /unique|duplicate/i.test(m)), msgs.join('\n'));
  for (const d of r.diagnostics) assert.equal(d.severity, 'Error');
});

test('garbage never throws', () => {
  for (const text of ['\u0000\u0001', '{{{{', ': : :', '*alias', '&a [*a, *a]', '---\n...\n---', 'a: !!binary xyz', '\t- x']) {
    const r = parseConfigText(text, 'g.yaml');
    assert.ok(Array.isArray(r.diagnostics));
  }
});

test('loadConfigPaths reads directories recursively, skipping dot-files and other extensions', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-src-'));
  try {
    mkdirSync(join(dir, 'sub', 'deeper'), { recursive: true });
    writeFileSync(join(dir, 'a.yaml'), svc('a'));
    writeFileSync(join(dir, 'sub', 'b.yml'), svc('b'));
    writeFileSync(join(dir, 'sub', 'deeper', 'c.json'), JSON.stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'c' } }));
    writeFileSync(join(dir, '.hidden.yaml'), svc('hidden'));
    writeFileSync(join(dir, 'notes.txt'), 'not config');
    const r = await loadConfigPaths([dir, join(dir, 'missing')]);
    assert.deepEqual(r.resources.map((x) => x.metadata.name).sort(), ['a', 'b', 'c']);
    assert.equal(r.files.length, 3);
    assert.equal(r.diagnostics.length, 1);
    assert.match(r.diagnostics[0]!.message, /cannot read .*missing: ENOENT/);
  } finally {
    // Removed once the read is done (a timer could remove it mid-read on a loaded machine).
    rmSync(dir, { recursive: true, force: true });
  }
});

test('validation: unknown kinds, wrong versions, duplicates', () => {
  const text = `apiVersion: example.com/v1
kind: Widget
metadata: {name: w}
---
apiVersion: networking.istio.io/v9
kind: VirtualService
metadata: {name: v}
spec: {}
---
${svc('same')}---
${svc('same')}`;
  const r = parseConfigText(text, 'v.yaml');
  const { resources, diagnostics } = validateResources(r.resources);
  assert.deepEqual(resources.map((x) => x.key), ['/Service/default/same']);
  const byCode = diagnostics.map((d) => [d.code, d.severity, d.pos?.line]);
  assert.deepEqual(byCode, [
    ['WFT1010', 'Warning', 2],
    ['WFT0106', 'Error', 5],
    ['WFT1009', 'Error', 23],
  ]);
  assert.match(diagnostics[1]!.hint ?? '', /networking\.istio\.io\/v1/);
  assert.match(diagnostics[2]!.message, /also defined at v\.yaml:10/);
});

test('real upstream kinds Weft does not support are ignored with a Warning, misspelt kinds are Errors', () => {
  const text = `apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: rg}
spec: {}
---
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: ef}
spec: {}
---
apiVersion: networking.istio.io/v1
kind: VirtualServic
metadata: {name: typo}
spec: {}
`;
  const { diagnostics } = validateResources(parseConfigText(text, 'u.yaml').resources);
  assert.deepEqual(diagnostics.map((d) => [d.code, d.severity, d.pos?.line]), [
    ['WFT1010', 'Warning', 2],
    ['WFT1010', 'Warning', 7],
    ['WFT0106', 'Error', 12],
  ]);
});

test('Istio short-name resolution', () => {
  assert.equal(resolveHost('reviews', 'bookinfo', 'cluster.local'), 'reviews.bookinfo.svc.cluster.local');
  assert.equal(resolveHost('Reviews.Other', 'bookinfo', 'cluster.local'), 'reviews.other');
  assert.equal(resolveHost('*', 'bookinfo', 'cluster.local'), '*');
  assert.equal(resolveHost('10.0.0.1', 'bookinfo', 'cluster.local'), '10.0.0.1');
});
