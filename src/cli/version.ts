/** gmemlab's version, as package.json gives it (test/cli/measure-snp-cli.test.ts keeps the two equal). */
export const GMEMLAB_VERSION = '0.1.0';
