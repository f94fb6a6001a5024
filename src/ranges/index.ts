export { type Extent, ExtentMap } from './extent-map.js';
export { PointExtentMap } from './point-extent-map.js';
