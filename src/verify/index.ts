/** Built-in verification that a migration's target holds what its source holds. */
export { verifyDeployments } from './verify.js';
export {
  DIFFERENCE_KINDS,
  type Difference,
  type DifferenceKind,
  type VerifyOptions,
  type VerifyPhase,
  type VerifyProgress,
  type VerifyReport,
} from './types.js';
