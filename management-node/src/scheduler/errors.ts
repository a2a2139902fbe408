// The core trusts the manager to validate user input first; what still
// arrives malformed is a bug in the caller, reported as this error (the
// manager's error map turns it into INTERNAL).
export class SchedulerInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SchedulerInputError';
  }
}
