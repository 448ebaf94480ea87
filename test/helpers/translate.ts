// "Mesh YAML text → buildModel → ServiceRegistry → translateProxy" for tests that need the xDS resources the
// control plane would send one proxy.
import assert from 'node:assert/strict';
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { buildModel } from '../../src/api/build.js';
import { parseConfigText } from '../../src/api/source.js';
import { proxyFromNode } from '../../src/controlplane/proxy.js';
import { ServiceRegistry } from '../../src/controlplane/registry/registry.js';
import type { ProxyResources, TranslateInput } from '../../src/controlplane/translate/index.js';
import { translateProxy } from '../../src/controlplane/translate/translate.js';
import { NodeSchema } from '../../src/xds/gen/envoy/config/core/v3/base_pb.js';

/**
 * Parses `yaml` (asserting no parse diagnostics and no Error diagnostics from the build), registers the model's
 * services and endpoints, and translates for the proxy described by `node`. Translation errors are left in the
 * result for the caller to check.
 */
export function translateYaml(yaml: string, fileName: string, node: MessageInitShape<typeof NodeSchema>, extra: Pick<TranslateInput, 'credentials'> = {}): ProxyResources {
  const parsed = parseConfigText(yaml, fileName);
  assert.deepEqual(parsed.diagnostics, []);
  const built = buildModel(parsed.resources);
  assert.deepEqual(built.diagnostics.filter((d) => d.severity === 'Error'), []);
  const reg = new ServiceRegistry();
  reg.setModel(built.model);
  return translateProxy({ model: built.model, registry: reg, proxy: proxyFromNode(create(NodeSchema, node)), ...extra });
}
