// One Jest config, three projects told apart by file name (STYLE.md §11):
//   *.spec.ts      unit, no I/O
//   *.int-spec.ts  against the real Postgres and NATS (own schema / stream names per file)
//   test-e2e/**/*.e2e-spec.ts  black-box against the running services
// Nest is ESM-only, so tests run as native ESM (NODE_OPTIONS=--experimental-vm-modules)
// and @swc/jest keeps decorator metadata, which Nest's DI needs.
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// SoftHSM2 (the PKCS#11 key store of the KEY_PROVIDER=pkcs11 tests) reads SOFTHSM2_CONF from
// the real process environment, which a test file cannot change (Jest hands it a copy): give
// the run one throwaway token directory, inherited by every worker. Tests create their own
// tokens in it (libs/crypto/src/testing/soft-hsm.ts); a developer's own tokens are never touched.
if (!process.env.CG_TEST_SOFTHSM2_DIR) {
  const dir = mkdtempSync(join(tmpdir(), 'cg-softhsm-'));
  mkdirSync(join(dir, 'softhsm-tokens'), { mode: 0o700 });
  const conf = join(dir, 'softhsm2.conf');
  writeFileSync(
    conf,
    `directories.tokendir = ${join(dir, 'softhsm-tokens')}\nobjectstore.backend = file\nlog.level = ERROR\n`,
  );
  process.env.CG_TEST_SOFTHSM2_DIR = dir;
  process.env.SOFTHSM2_CONF = conf;
}

const swc = [
  '@swc/jest',
  {
    jsc: {
      parser: { syntax: 'typescript', decorators: true },
      transform: { legacyDecorator: true, decoratorMetadata: true, useDefineForClassFields: false },
      target: 'es2023',
      keepClassNames: true,
    },
    module: { type: 'es6' },
    sourceMaps: 'inline',
  },
];

const common = {
  extensionsToTreatAsEsm: ['.ts'],
  transform: { '^.+\\.ts$': swc },
  // Sources import siblings as './x.js' (nodenext); tests run the .ts files directly.
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  // Workspace packages resolve to their TypeScript sources, so tests never need a build.
  testEnvironmentOptions: { customExportConditions: ['@context-gateway/source', 'node', 'node-addons'] },
  testEnvironment: 'node',
  modulePathIgnorePatterns: ['<rootDir>/.*/dist/'],
};

export default {
  // Known slow files start first, so a tier on two workers does not end with one running alone.
  testSequencer: '<rootDir>/scripts/jest-sequencer.mjs',
  projects: [
    {
      ...common,
      displayName: 'unit',
      testMatch: ['<rootDir>/{libs,services,proto,tools,scripts,deploy,docs,sdk}/**/*.spec.ts'],
    },
    {
      ...common,
      displayName: 'int',
      testMatch: ['<rootDir>/{libs,services,proto,tools}/**/*.int-spec.ts'],
      // A 60 s default per test and hook: a hang guard, not Jest's 5 s speed limit.
      setupFilesAfterEnv: ['<rootDir>/scripts/jest-int-setup.mjs'],
    },
    { ...common, displayName: 'e2e', testMatch: ['<rootDir>/test-e2e/**/*.e2e-spec.ts'] },
  ],
};
