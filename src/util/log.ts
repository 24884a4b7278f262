// Logging: everything human-readable goes to stderr so that `--json` output on stdout stays clean.
let quiet = false;

export function setQuiet(q: boolean): void {
  quiet = q;
}

export function log(...parts: unknown[]): void {
  if (!quiet) process.stderr.write(parts.map(String).join(' ') + '\n');
}

export function warn(...parts: unknown[]): void {
  process.stderr.write('warning: ' + parts.map(String).join(' ') + '\n');
}

/** Writes machine-readable data to stdout (the `--json` channel). */
export function emitJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n');
}
