import { TestClock } from '@context-gateway/clock/testing';
import { describe, expect, it } from '@jest/globals';

import { atLeast, logRelay, McpLogLevels } from './mcp-logging.js';
import type { StreamCaller } from './mcp-subscribers.js';

type Sent = { level: string; logger: string; data: unknown };

function relay(threshold: Parameters<typeof logRelay>[0]['threshold'], max?: number) {
  const sent: Sent[] = [];
  const r = logRelay({ integration: 'github', threshold, notify: (m) => sent.push(m), ...(max ? { max } : {}) });
  return { r, sent };
}

describe('logRelay', () => {
  it('passes on only messages at or above the agent’s level, under the integration’s name', () => {
    const { r, sent } = relay('warning');
    expect(r?.level).toBe('warning');
    r?.deliver({ level: 'info', data: 'chatter' });
    r?.deliver({ level: 'warning', data: { disk: 'low' } });
    r?.deliver({ level: 'emergency', logger: 'db', data: 'down' });
    expect(sent).toEqual([
      { level: 'warning', logger: 'github', data: { disk: 'low' } },
      { level: 'emergency', logger: 'github/db', data: 'down' },
    ]);
  });

  it('an upstream cannot pose as another integration or as the gateway', () => {
    const { r, sent } = relay('debug');
    r?.deliver({ level: 'error', logger: 'context-gateway', data: 'x' });
    r?.deliver({ level: 'error', logger: 'slack', data: 'y' });
    expect(sent.map((m) => m.logger)).toEqual(['github/context-gateway', 'github/slack']);
  });

  it('is none when the agent takes no messages (the upstream is asked for none)', () => {
    expect(relay(undefined).r).toBeUndefined();
  });

  it('stops at the per-request cap and says once that the rest were dropped', () => {
    const { r, sent } = relay('debug', 2);
    for (let i = 0; i < 5; i++) r?.deliver({ level: 'info', data: i });
    expect(sent.map((m) => m.data)).toEqual([0, 1, expect.stringContaining('more than 2 log messages')]);
    expect(sent[2]).toMatchObject({ level: 'warning', logger: 'context-gateway' });
  });

  it('keeps the drop notice back from an agent above warning', () => {
    const { r, sent } = relay('error', 1);
    for (let i = 0; i < 3; i++) r?.deliver({ level: 'critical', data: i });
    expect(sent.map((m) => m.data)).toEqual([0]);
  });

  it('orders the levels as RFC 5424 does', () => {
    expect(atLeast('notice', 'info')).toBe(true);
    expect(atLeast('info', 'notice')).toBe(false);
    expect(atLeast('debug', 'debug')).toBe(true);
  });
});

describe('McpLogLevels', () => {
  const caller = (applicationId: string, onBehalfOf = 'u1'): StreamCaller =>
    ({ orgId: 'o1', applicationId, onBehalfOf }) as StreamCaller;

  it('remembers a level per application and person, for a day after its last use', () => {
    const clock = new TestClock(new Date('2026-12-01T00:00:00Z'));
    const levels = new McpLogLevels(clock);
    levels.set(caller('a'), 'error');
    expect(levels.get(caller('a'))).toBe('error');
    expect(levels.get(caller('b'))).toBeUndefined();
    expect(levels.get(caller('a', 'u2'))).toBeUndefined();
    clock.advance(23 * 3_600_000);
    expect(levels.get(caller('a'))).toBe('error');
    clock.advance(23 * 3_600_000);
    expect(levels.get(caller('a'))).toBe('error');
    clock.advance(24 * 3_600_000);
    expect(levels.get(caller('a'))).toBeUndefined();
  });

  it('a later setLevel replaces the earlier one', () => {
    const levels = new McpLogLevels(new TestClock(new Date()));
    levels.set(caller('a'), 'error');
    levels.set(caller('a'), 'debug');
    expect(levels.get(caller('a'))).toBe('debug');
  });
});
