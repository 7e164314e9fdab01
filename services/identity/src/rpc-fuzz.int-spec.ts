import { fileURLToPath } from 'node:url';

import { RpcClient } from '@context-gateway/messaging';
import { rpc } from '@context-gateway/proto';
import { describeRpcFuzz } from '@context-gateway/service-kit/testing';

import { AppModule } from './app.module.js';
import { loadEnv } from './env.js';

// Every identity subject fed valid, mutated and random protobuf (docs/fuzzing.md), with an
// organization and an application that exist, so fuzzed requests can name them.
describeRpcFuzz({
  name: 'identity',
  module: AppModule,
  loadEnv,
  migrationsDir: fileURLToPath(new URL('../prisma/migrations', import.meta.url)),
  minSubjects: 11,
  known: async ({ nc }) => {
    const client = new RpcClient(nc);
    const { organization } = await client.request(rpc.identity.createOrganization, { name: 'Fuzz' });
    const { application } = await client.request(rpc.identity.createApplication, {
      orgId: organization?.id ?? '',
      name: 'Fuzz app',
      callbackUrls: ['https://app.example/cb'],
      integrations: ['github'],
      scopes: ['github:read:repos'],
    });
    return [organization?.id ?? '', application?.id ?? '', organization?.slug ?? ''];
  },
});
