import { readFileSync } from 'node:fs';

/**
 * Where a password for the command line comes from, best first: a file (--source-password-file,
 * kept out of the process list and the shell history), the environment, the option itself
 * (visible to every user of the machine in `ps`: warned about).
 */
export function resolvePassword(side: 'source' | 'target', opts: { password?: string; passwordFile?: string }, warn: (line: string) => void = (l) => process.stderr.write(`${l}\n`)): string | undefined {
  if (opts.password !== undefined && opts.passwordFile !== undefined) {
    throw new Error(`give --${side}-password or --${side}-password-file, not both`);
  }
  if (opts.passwordFile !== undefined) {
    let text: string;
    try {
      text = readFileSync(opts.passwordFile, 'utf8');
    } catch (e) {
      throw new Error(`cannot read --${side}-password-file ${opts.passwordFile}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    // One trailing newline is the editor's, not the password's.
    return text.replace(/\r?\n$/, '');
  }
  if (opts.password !== undefined) {
    warn(`ferry: warning: --${side}-password is visible to other users of this machine (ps, shell history); prefer --${side}-password-file or FERRY_${side.toUpperCase()}_PASSWORD`);
    return opts.password;
  }
  return process.env[`FERRY_${side.toUpperCase()}_PASSWORD`];
}
