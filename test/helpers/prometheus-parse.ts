// A strict parser of the Prometheus text exposition format for tests of the proxy's /stats/prometheus output:
// every sample must belong to the family of the last TYPE line, labels are checked, the text ends with a newline.
import assert from 'node:assert/strict';

export interface PromSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}
export interface PromFamily {
  type: string;
  samples: PromSample[];
}

/** Parses the text exposition format strictly: every sample must belong to the family of the last TYPE line. */
export function parsePrometheus(text: string): Map<string, PromFamily> {
  const families = new Map<string, PromFamily>();
  let current: { name: string; fam: PromFamily } | undefined;
  const lines = text.split('\n');
  assert.equal(lines.pop(), '', 'output ends with a newline');
  for (const line of lines) {
    if (line === '') continue;
    const type = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line);
    if (type) {
      assert.ok(!families.has(type[1]!), `family ${type[1]} appears once`);
      current = { name: type[1]!, fam: { type: type[2]!, samples: [] } };
      families.set(type[1]!, current.fam);
      continue;
    }
    assert.ok(!line.startsWith('#'), `unexpected comment: ${line}`);
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)\{(.*)\} (\S+)$/.exec(line);
    assert.ok(m, `sample line: ${line}`);
    const [, name, labelText, valueText] = m;
    assert.ok(current, `sample before any TYPE: ${line}`);
    const suffixes = current.fam.type === 'histogram' ? ['_bucket', '_sum', '_count'] : current.fam.type === 'summary' ? ['', '_sum', '_count'] : [''];
    assert.ok(
      suffixes.some((s) => name === current!.name + s),
      `${name} belongs to ${current.name}`,
    );
    const labels: Record<string, string> = {};
    let rest = labelText!;
    while (rest.length > 0) {
      const lm = /^([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\[\\n"])*)"(,|$)/.exec(rest);
      assert.ok(lm, `labels of ${line}`);
      assert.ok(!(lm[1]! in labels), `label ${lm[1]} once`);
      labels[lm[1]!] = lm[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
      rest = rest.slice(lm[0].length);
    }
    const value = valueText === '+Inf' ? Infinity : valueText === 'nan' || valueText === 'NaN' ? NaN : Number(valueText);
    assert.ok(!Number.isNaN(value) || /nan/i.test(valueText!), `value of ${line}`);
    current.fam.samples.push({ name: name!, labels, value });
  }
  return families;
}
