import { timestampFromDate } from '@bufbuild/protobuf/wkt';

/** Date → protobuf Timestamp, leaving absent values absent. */
export const ts = (date: Date | null | undefined) => (date ? timestampFromDate(date) : undefined);
