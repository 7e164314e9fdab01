import { create } from '@bufbuild/protobuf';

import { RenamePasskeyRequestSchema } from '../gen/contextgateway/identity/v1/identity_pb.js';
import { identityRpc } from './identity.js';

describe('identity.v1.rename_passkey validation', () => {
  const problems = (name: string) =>
    identityRpc.renamePasskey.validate?.(
      create(RenamePasskeyRequestSchema, {
        sessionToken: `cg_ss_${'A'.repeat(43)}`,
        passkeyId: '0193a1b2-0000-7000-8000-000000000001',
        name,
      }),
    ) ?? [];

  it('takes one line of 1 to 64 characters, counted after trimming', () => {
    expect(problems('Work laptop')).toEqual([]);
    expect(problems(` ${'x'.repeat(64)} `)).toEqual([]);
  });

  it.each([
    ['empty', '   '],
    ['too long', 'x'.repeat(65)],
    ['more than one line', 'Work\nlaptop'],
    ['holding a control character', 'Work\u0007laptop'],
  ])('refuses a name %s', (_, name) => {
    expect(problems(name).map((p) => p.path)).toContain('name');
  });
});
