import { AppError } from '@context-gateway/errors';
import type { Layer } from '@context-gateway/policy-engine';
import { PolicyLayer } from '@context-gateway/proto';

/** The engine's name for each wire layer; UNSPECIFIED (proto3's zero) names none. */
const LAYER_NAMES: Partial<Record<PolicyLayer, Layer>> = {
  [PolicyLayer.ORG]: 'org',
  [PolicyLayer.USER]: 'user',
  [PolicyLayer.APPLICATION]: 'application',
};

/** The layer's name, or null where the wire says "no layer" (an allowed decision's decidedBy). */
export function layerNameOrNull(layer: PolicyLayer): Layer | null {
  return LAYER_NAMES[layer] ?? null;
}

/** The layer of a rule or a match: policy always sets one, so none is policy's bug. */
export function layerName(layer: PolicyLayer): Layer {
  const name = LAYER_NAMES[layer];
  if (name === undefined) throw new AppError('internal', `Policy answered with an unknown rule layer (${layer})`);
  return name;
}
