export interface ValidationProblem {
  path: string;
  message: string;
}

/** Small checks for decoded proto3 messages, where "absent" and "empty" look the same. */
export const check = {
  nonEmpty(value: string, path: string): ValidationProblem[] {
    return value.trim() === '' ? [{ path, message: 'must not be empty' }] : [];
  },
  uuid(value: string, path: string): ValidationProblem[] {
    // Lower case only: ids are compared as strings and bound into encrypted data, so one
    // id must have one spelling everywhere (the gateway refuses other spellings too).
    return /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(value)
      ? []
      : [{ path, message: 'must be a lower-case UUID' }];
  },
  maxLength(value: string, max: number, path: string): ValidationProblem[] {
    return value.length > max ? [{ path, message: `must be at most ${max} characters` }] : [];
  },
  enumSet(value: number, path: string): ValidationProblem[] {
    return value === 0 ? [{ path, message: 'must be set' }] : [];
  },
};
