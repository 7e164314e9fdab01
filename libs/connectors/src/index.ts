export * from './connector.js';
export * from './source-http.js';
export * from './paged-collection.js';
export * from './github.connector.js';
export * from './spotify.connector.js';
export * from './netflix-csv.js';
export * from './webhook-signature.js';
export * from './registry.js';
