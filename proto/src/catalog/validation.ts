export interface ValidationProblem {
  path: string;
  message: string;
}

const LOWER_CASE_UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * Lower case only: ids are compared as strings and bound into encrypted data, so one id
 * must have one spelling everywhere (the gateway refuses other spellings too).
 */
export function isLowerCaseUuid(value: string): boolean {
  return LOWER_CASE_UUID.test(value);
}

/** What check.timestamp accepts, as a test that allocates nothing (for checks run per record). */
export function isStorableTimestamp(value: { seconds: bigint; nanos: number } | undefined): boolean {
  if (value === undefined) return true;
  const inRange = value.seconds >= -62_135_596_800n && value.seconds <= 253_402_300_799n;
  return inRange && value.nanos >= 0 && value.nanos <= 999_999_999;
}

/** What check.storable accepts, as a test that allocates nothing (for walks over every string of a request). */
export function isStorableText(value: string): boolean {
  return !value.includes('\0');
}

/** Small checks for decoded proto3 messages, where "absent" and "empty" look the same. */
export const check = {
  nonEmpty(value: string, path: string): ValidationProblem[] {
    return value.trim() === '' ? [{ path, message: 'must not be empty' }] : [];
  },
  uuid(value: string, path: string): ValidationProblem[] {
    return isLowerCaseUuid(value) ? [] : [{ path, message: 'must be a lower-case UUID' }];
  },
  maxLength(value: string, max: number, path: string): ValidationProblem[] {
    return value.length > max ? [{ path, message: `must be at most ${max} characters` }] : [];
  },
  /**
   * A google.protobuf.Timestamp inside what a Date and Postgres' timestamptz can hold (years
   * 1 to 9999, nanos below one second, as the Timestamp spec itself requires); absent is fine.
   */
  timestamp(value: { seconds: bigint; nanos: number } | undefined, path: string): ValidationProblem[] {
    return isStorableTimestamp(value) ? [] : [{ path, message: 'must be a timestamp between the years 1 and 9999' }];
  },
  /** Text Postgres can store: no NUL (it would reach the database as a query error, `internal`). */
  storable(value: string, path: string): ValidationProblem[] {
    return isStorableText(value) ? [] : [{ path, message: 'must not contain a NUL character' }];
  },
  enumSet(value: number, path: string): ValidationProblem[] {
    return value === 0 ? [{ path, message: 'must be set' }] : [];
  },
};
