export * from './connector.js';
export * from './github.connector.js';
export * from './netflix-csv.js';
export * from './paged-collection.js';
export * from './registry.js';
export * from './source-http.js';
export * from './spotify.connector.js';
export * from './webhook-signature.js';
