/** Flows: the file format, the loader, the runner, the matrix. */
export { type Expr, parseExpr } from './expr.js';
export { FlowLoadError, formatProblem, loadFlow, type Problem, parseFlow } from './loader.js';
export {
  agrees,
  documentedOutcome,
  type MatrixCell,
  type MatrixOptions,
  type MatrixResult,
  type Observed,
  observe,
  outcomeLabel,
  runMatrix,
} from './matrix.js';
export {
  type FlowRun,
  FlowRunError,
  outcomeText,
  type RunOptions,
  runFlow,
  type StepOutcome,
  type StepResult,
} from './runner.js';
export { flowJsonSchema } from './schema.js';
export type { Flow, Loc, Outcome, Step } from './types.js';
