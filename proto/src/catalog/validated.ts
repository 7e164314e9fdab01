import type { DescMessage, MessageShape } from '@bufbuild/protobuf';

import type { EventDescriptor } from './descriptors.js';
import type { ValidationProblem } from './validation.js';

declare const VALIDATED: unique symbol;

/**
 * A message that passed its event descriptor's checks and was frozen right after, so it
 * still passes when it is published: JetStreamPublisher.publishEncoded sends it without
 * checking it again. Only this package makes one (validateEvent; auditEventBatchOf for a
 * batch of validated events): a cast to it is a review finding, not a shortcut. Each
 * message type has one event descriptor, so the brand need not name the descriptor.
 */
export type Validated<T> = T & { readonly [VALIDATED]: true };

export type ValidationResult<T> =
  | { readonly ok: true; readonly message: Validated<T> }
  | { readonly ok: false; readonly problems: ValidationProblem[] };

/**
 * Checks a message as JetStreamPublisher.publish would and, when it passes, freezes it —
 * nested messages and lists included — so nobody can change it between here and the
 * publish (in strict-mode code a later assignment throws). The caller's object itself is
 * frozen, not a copy: hand over only a message nothing else will change. Bytes fields
 * (Uint8Array) cannot be frozen and stay writable; none of the validated events has one.
 */
export function validateEvent<M extends DescMessage>(
  descriptor: EventDescriptor<M>,
  message: MessageShape<M>,
): ValidationResult<MessageShape<M>> {
  const problems = descriptor.validate?.(message) ?? [];
  if (problems.length > 0) return { ok: false, problems };
  freezerOf(descriptor.message)(message);
  return { ok: true, message: message as Validated<MessageShape<M>> };
}

/**
 * For this package's validators only (not exported from its index): brands a message that
 * passed and that its caller froze whole already (a batch of events each frozen on its
 * own: walking them again would only repeat the work).
 */
export function brandFrozen<T extends object>(message: T): Validated<T> {
  if (!Object.isFrozen(message)) throw new Error('brandFrozen: the message is not frozen');
  return message as Validated<T>;
}

type Freeze = (value: object) => void;

const freezers = new WeakMap<DescMessage, Freeze>();

/**
 * What freezes a message of this type and everything below it, made once per type from its
 * descriptor: it visits only the fields that hold objects (for an audit event the timestamp,
 * the policy and its list of rule ids), at under half the CPU of walking every field by name.
 */
function freezerOf(desc: DescMessage): Freeze {
  const known = freezers.get(desc);
  if (known) return known;
  const parts: Freeze[] = [];
  // A oneof group's fields share one object, `{ case, value }`: frozen whole, once.
  for (const oneof of desc.oneofs) parts.push((m) => freezeDeep(get(m, oneof.localName)));
  for (const field of desc.fields) {
    const name = field.localName;
    if (field.oneof) continue;
    else if (field.fieldKind === 'message') {
      const child = field.message;
      // A well-known type may stand for a plain value (a wrapper's scalar, a Struct's JSON).
      parts.push((m) => {
        const v = get(m, name);
        if (typeof v !== 'object' || v === null) return;
        if ('$typeName' in v) freezerOf(child)(v);
        else freezeDeep(v);
      });
    } else if (field.fieldKind === 'list' && field.listKind === 'message') {
      const child = field.message;
      parts.push((m) => {
        const list = get(m, name) as object[];
        for (const item of list) freezerOf(child)(item);
        Object.freeze(list);
      });
    } else if (field.fieldKind === 'list' || field.fieldKind === 'map') parts.push((m) => freezeDeep(get(m, name)));
  }
  const freeze: Freeze = (m) => {
    for (const part of parts) part(m);
    freezeDeep(get(m, '$unknown'));
    Object.freeze(m);
  };
  freezers.set(desc, freeze);
  return freeze;
}

const get = (m: object, key: string): unknown => (m as Record<string, unknown>)[key];

/** Every object below too (values are trees, no cycles), a Uint8Array excepted: it cannot be frozen. */
function freezeDeep(value: unknown): void {
  if (typeof value !== 'object' || value === null || ArrayBuffer.isView(value)) return;
  Object.freeze(value);
  for (const key in value) freezeDeep(get(value, key));
}
