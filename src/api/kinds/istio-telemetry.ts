/** Istio telemetry.istio.io kinds (v1, v1alpha1): Telemetry. */
import type { KindDef } from './kind.js';
import { telemetryKind } from './istio/telemetry.js';

export const istioTelemetryKinds: ReadonlyArray<KindDef<any>> = [telemetryKind];
