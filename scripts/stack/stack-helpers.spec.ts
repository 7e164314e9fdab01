import { describe, expect, it } from '@jest/globals';

import { parseArgs } from '../start.mjs';
import { parseEndpoint, redactUrl, serviceBaseUrl, withDatabase } from './endpoints.mjs';
import { natsMissingMessage } from './infra.mjs';
import { assignColours, createLineSplitter, createPrefixedLogger, createRing, formatPrefix } from './log-lines.mjs';

describe('parseEndpoint', () => {
  it('takes the port, credentials and database from a postgres URL', () => {
    expect(parseEndpoint('postgres://app:s%40cret@127.0.0.1:55432/context_gateway')).toEqual({
      host: '127.0.0.1',
      port: 55432,
      user: 'app',
      password: 's@cret',
      database: 'context_gateway',
      isLocal: true,
    });
  });

  it('falls back to the protocol default port', () => {
    expect(parseEndpoint('postgres://postgres@localhost/x').port).toBe(5432);
    expect(parseEndpoint('nats://127.0.0.1').port).toBe(4222);
  });

  it('marks remote hosts so no embedded server is started in their place', () => {
    expect(parseEndpoint('postgres://db.internal:5432/x').isLocal).toBe(false);
    expect(parseEndpoint('nats://[::1]:4222').host).toBe('::1');
    expect(parseEndpoint('nats://[::1]:4222').isLocal).toBe(true);
  });

  it('rejects unsupported schemes and garbage without echoing a password', () => {
    expect(() => parseEndpoint('mysql://root:hunter2@localhost/x')).toThrow(/unsupported URL scheme "mysql:"/);
    expect(() => parseEndpoint('mysql://root:hunter2@localhost/x')).not.toThrow(/hunter2/);
    expect(() => parseEndpoint('not a url')).toThrow(/not a valid URL/);
  });
});

describe('URL helpers', () => {
  it('redacts the password but keeps where it points', () => {
    expect(redactUrl('postgres://app:hunter2@db:5432/cg')).toBe('postgres://app:***@db:5432/cg');
    expect(redactUrl('postgres://app@db:5432/cg')).toBe('postgres://app@db:5432/cg');
  });

  it('points a URL at the maintenance database without losing credentials', () => {
    expect(withDatabase('postgres://app:pw@db:5432/cg?sslmode=disable', 'postgres')).toBe(
      'postgres://app:pw@db:5432/postgres?sslmode=disable',
    );
  });

  it('probes services bound to every interface through loopback', () => {
    expect(serviceBaseUrl(undefined, 8080)).toBe('http://127.0.0.1:8080');
    expect(serviceBaseUrl('0.0.0.0', 8081)).toBe('http://127.0.0.1:8081');
    expect(serviceBaseUrl('::1', 8082)).toBe('http://[::1]:8082');
  });
});

describe('log lines', () => {
  it('emits only complete lines, however the output was chunked', () => {
    const lines: string[] = [];
    const splitter = createLineSplitter((line) => lines.push(line));
    splitter.push('{"msg":"a"}\n{"ms');
    splitter.push('g":"b"}\r\n');
    expect(lines).toEqual(['{"msg":"a"}', '{"msg":"b"}']);
    splitter.push('tail without newline');
    expect(lines).toHaveLength(2);
    splitter.flush();
    expect(lines[2]).toBe('tail without newline');
  });

  it('prefixes each line with the padded service name, coloured on request', () => {
    const out: string[] = [];
    const seen: string[] = [];
    const logger = createPrefixedLogger('gateway', {
      width: 10,
      write: (line) => out.push(line),
      onLine: (line) => seen.push(line),
    });
    logger.push('{"level":"info"}\n');
    expect(out).toEqual(['gateway    | {"level":"info"}']);
    expect(seen).toEqual(['{"level":"info"}']);
    expect(formatPrefix('audit', { width: 6, colour: 36 })).toBe('\u001b[36maudit  |\u001b[0m ');
  });

  it('gives neighbouring services different colours', () => {
    const colours = assignColours(['gateway', 'identity', 'policy']);
    expect(new Set(colours.values()).size).toBe(3);
  });

  it('keeps only the newest lines for failure reports', () => {
    const ring = createRing<string>(2);
    ['one', 'two', 'three'].forEach((line) => ring.add(line));
    expect(ring.values()).toEqual(['two', 'three']);
  });
});

describe('start CLI arguments', () => {
  it('builds by default and skips the build with --no-build', () => {
    expect(parseArgs([]).build).toBe(true);
    expect(parseArgs(['--no-build']).build).toBe(false);
  });

  it('accepts a service list and a ready timeout in both flag styles', () => {
    expect(parseArgs(['--services', 'gateway, policy']).services).toEqual(['gateway', 'policy']);
    expect(parseArgs(['--services=audit']).services).toEqual(['audit']);
    expect(parseArgs(['--ready-timeout=5']).readyTimeoutMs).toBe(5000);
  });

  it('refuses unknown options and bad values instead of ignoring them', () => {
    expect(() => parseArgs(['--no-biuld'])).toThrow(/unknown option --no-biuld/);
    expect(() => parseArgs(['--ready-timeout', 'soon'])).toThrow(/positive number/);
    expect(() => parseArgs(['--services'])).toThrow(/needs a value/);
  });
});

describe('missing nats-server message', () => {
  it('says what is missing and how to get it', () => {
    const message = natsMissingMessage(4222);
    expect(message).toMatch(/nats-server is not installed/);
    expect(message).toMatch(/apt-get install -y nats-server/);
    expect(message).toMatch(/docker run .* -p 4222:4222 nats:2\.10 -js/);
  });
});
