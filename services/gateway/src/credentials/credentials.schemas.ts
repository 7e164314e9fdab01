import { z } from 'zod';

export const issueCredentialBody = z
  .object({
    integration: z.string().min(1).max(64).describe('Integration key, e.g. `github`.'),
    userId: z
      .string()
      .uuid()
      .optional()
      .describe(
        'The person whose connection to use. Required with an API key or a client credentials token; ' +
          "with an access token acting for a person it may be omitted (it is the token's person) and must not name anyone else.",
      ),
  })
  .strict();

export const credentialSchema = z.object({
  accessToken: z.string().describe("The source's own access token. Never a refresh token; do not store it."),
  tokenType: z.string().describe('Usually `bearer`.'),
  expiresAt: z
    .string()
    .nullable()
    .describe(
      'ISO 8601; when the source says the token stops working. Null when the source gives tokens no lifetime. ' +
        'A token close to expiry is refreshed before it is handed out.',
    ),
  integration: z.string(),
  connectionId: z.string().describe('The connection the token belongs to.'),
  apiBaseUrl: z.string().describe("The source API's base URL the token is for, without a trailing slash."),
});
