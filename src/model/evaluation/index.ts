export * from './baselines.js';
export * from './champion.js';
export * from './conformal.js';
export * from './evaluate.js';
export * from './metrics.js';
export * from './season.js';
