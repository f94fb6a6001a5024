export { type Extent, ExtentMap } from './extent-map.js';
export { PageCells, PointExtentMap } from './point-extent-map.js';
