export { registerRunpodV1 } from './v1.js';
export { registerRunpodV2 } from './v2.js';
export type { RunpodOptions } from './shared.js';
