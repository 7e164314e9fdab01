// Runs before each integration test file (jest.config.js, project "int").
//
// Jest's default of 5 s per test and per hook is a speed limit, not a hang guard: an
// integration test migrates a schema, starts a nats-server or a Nest module, and on a loaded
// 2-core machine running two test files at once that can take longer without anything being
// wrong. A test that hangs still fails, after 60 s. Files and tests that set their own
// timeout keep it; speed is measured by benchmarks, never by a timeout.
import { jest } from '@jest/globals';

jest.setTimeout(60_000);
