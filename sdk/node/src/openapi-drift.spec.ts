import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { describe, expect, it } from '@jest/globals';

import { buildGatewayOpenApi, contractFiles, gatewayDir, sdkDir, writeContractFiles } from '../scripts/contract.mjs';

// The SDK's types are generated from the committed openapi.json. This fails when the gateway's
// route schemas (services/gateway/src, read as sources: no build needed) produce another
// document, or when the generated files are not what that document gives: the SDK would no
// longer describe the API. `UPDATE_OPENAPI=1` rewrites them instead (or scripts/generate.mjs).
describe('the SDK contract', () => {
  it('is what the gateway builds from its routes now', async () => {
    const document = await buildGatewayOpenApi((module) => import(join(gatewayDir, 'src', `${module}.ts`)));
    const files = await contractFiles(document);
    if (process.env.UPDATE_OPENAPI === '1') writeContractFiles(files);
    const committed = (path: string) => readFileSync(join(sdkDir, path), 'utf8');
    // The document as data (Prettier decides its layout); the generated code to the byte.
    expect(JSON.parse(committed('openapi.json'))).toEqual(document);
    expect(committed('src/generated/api.ts')).toBe(files['src/generated/api.ts']);
    expect(committed('src/generated/error-codes.ts')).toBe(files['src/generated/error-codes.ts']);
  }, 60_000);
});
