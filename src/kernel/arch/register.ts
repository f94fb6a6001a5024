/**
 * Registers the vendor VM types and platforms (SEV/SNP, TDX) with the core. Imported once by the
 * package entry so the core never imports vendor code directly.
 */
import './sev/index.js';
import './tdx/index.js';
