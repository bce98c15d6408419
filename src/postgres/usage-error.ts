// The operator's own mistake (a bad flag, a malformed connection string): the
// CLI maps it to exit code 2. It lives alone so the connection-string parser and
// the masking helpers can both raise it without importing each other.
export class UsageError extends Error {
  override name = 'UsageError';
}
