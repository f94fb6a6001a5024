/** Registration of the sev VM types and platform (filled in by the sev model). */
export {};
