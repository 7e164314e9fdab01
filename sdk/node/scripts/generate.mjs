#!/usr/bin/env node
// @ts-check
// Regenerates the SDK's contract: openapi.json (the gateway's OpenAPI 3.1 document),
// src/generated/api.ts (its types, by openapi-typescript) and src/generated/error-codes.ts.
// All are committed; src/openapi-drift.spec.ts fails when they are not what the gateway's
// routes produce now.
//
//   node sdk/node/scripts/generate.mjs                      from the gateway's build (services/gateway/dist,
//                                                           fresh after `pnpm --filter @context-gateway/gateway build`)
//   node sdk/node/scripts/generate.mjs --from <gatewayUrl>  from a running gateway's /v1/openapi.json
//   UPDATE_OPENAPI=1 <jest> sdk/node/src/openapi-drift.spec.ts   from the gateway's sources, no build
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

import { buildGatewayOpenApi, contractFiles, gatewayDir, sdkDir, writeContractFiles } from './contract.mjs';

const { values } = parseArgs({ options: { from: { type: 'string' } } });

/** @returns {Promise<Record<string, any>>} */
async function obtainDocument() {
  if (values.from) {
    const res = await fetch(new URL('/v1/openapi.json', values.from));
    if (!res.ok) throw new Error(`GET ${res.url} answered ${res.status}`);
    return /** @type {Promise<Record<string, any>>} */ (res.json());
  }
  const dist = join(gatewayDir, 'dist');
  if (!existsSync(join(dist, 'app.module.js')))
    throw new Error(`${dist} is missing: pnpm --filter @context-gateway/gateway build (or pass --from <gatewayUrl>)`);
  return buildGatewayOpenApi((module) => import(pathToFileURL(join(dist, `${module}.js`)).href));
}

const document = await obtainDocument();
mkdirSync(join(sdkDir, 'src', 'generated'), { recursive: true });
writeContractFiles(await contractFiles(document));
console.log(`wrote openapi.json (${Object.keys(document.paths ?? {}).length} paths) and src/generated/`);
