/** Registration of the tdx VM types and platform (filled in by the tdx model). */
export {};
