/**
 * The one place the command calls validate() with options. The other branch adds
 * `validate(sync, { repair?: boolean })` to the Replicator; when it lands, this becomes a
 * plain `rep.validate(sync, options)`.
 */
import type { Replicator, ValidationResult } from '../index.js';

export interface ValidateOptions {
  /** Make every database equal to the sources, and report what changed. */
  repair?: boolean;
}

type ValidateWithOptions = (sync: string, options?: ValidateOptions) => Promise<ValidationResult>;

export function validateWith(rep: Replicator, sync: string, options: ValidateOptions): Promise<ValidationResult> {
  // until validate({ repair }) lands
  return (rep.validate as ValidateWithOptions).call(rep, sync, options);
}
