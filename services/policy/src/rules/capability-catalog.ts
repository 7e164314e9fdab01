import { builtinCapabilities } from '@context-gateway/integration-catalog';

/**
 * The capabilities policy knows about without anyone naming them: what the built-in
 * integrations offer, as their manifests declare it (libs/integration-catalog: data scopes are
 * read capabilities, action scopes and tools are `<integration>:<action>`). An
 * integration-wide rule (`github`) covers exactly these plus any capability of that
 * integration that a rule, an application declaration or a grant names explicitly. Anything
 * else is unknown and denied by the engine, whatever the rules say.
 */
export const BUILTIN_CAPABILITIES: readonly string[] = Object.freeze(builtinCapabilities());
