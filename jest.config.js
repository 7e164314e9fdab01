// One Jest config, three projects told apart by file name (STYLE.md §11):
//   *.spec.ts      unit, no I/O
//   *.int-spec.ts  against the real Postgres and NATS (own schema / stream names per file)
//   test-e2e/**/*.e2e-spec.ts  black-box against the running services
// Nest is ESM-only, so tests run as native ESM (NODE_OPTIONS=--experimental-vm-modules)
// and @swc/jest keeps decorator metadata, which Nest's DI needs.
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
  projects: [
    {
      ...common,
      displayName: 'unit',
      testMatch: ['<rootDir>/{libs,services,proto,tools,scripts,deploy,docs,sdk}/**/*.spec.ts'],
    },
    { ...common, displayName: 'int', testMatch: ['<rootDir>/{libs,services,proto,tools}/**/*.int-spec.ts'] },
    { ...common, displayName: 'e2e', testMatch: ['<rootDir>/test-e2e/**/*.e2e-spec.ts'] },
  ],
};
