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
    return /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(value)
      ? []
      : [{ path, message: 'must be a UUID' }];
  },
  maxLength(value: string, max: number, path: string): ValidationProblem[] {
    return value.length > max ? [{ path, message: `must be at most ${max} characters` }] : [];
  },
  enumSet(value: number, path: string): ValidationProblem[] {
    return value === 0 ? [{ path, message: 'must be set' }] : [];
  },
};
