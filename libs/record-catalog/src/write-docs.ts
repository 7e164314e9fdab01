import { writeFileSync } from 'node:fs';

import { renderRecordTypesMarkdown } from './record-docs.js';

// `pnpm --filter @context-gateway/record-catalog run docs` regenerates docs/record-types.md.
const target = new URL('../../../docs/record-types.md', import.meta.url);
writeFileSync(target, renderRecordTypesMarkdown());
console.log(`wrote ${target.pathname}`);
