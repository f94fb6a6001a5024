export { type Extent, ExtentMap } from './extent-map.js';
