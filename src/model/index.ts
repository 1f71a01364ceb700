export * from './ids.js';
export * from './status.js';
export * from './errors.js';
export * from './problem.js';
export * from './spec.js';
export * from './records.js';
export * from './host-ports.js';
export * from './image-ref.js';
