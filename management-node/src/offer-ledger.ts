// The offer ledger: every offer awaiting its worker's answer (Accepted or
// Rejected), its ack deadline and its withdrawal (docs/architecture.md, rule 3).
// Pure bookkeeping on the deadline clock: sending StartTask and CancelTask, and
// what a refusal means for the task, are dispatch.ts's and attempts.ts's part.

export interface Offer {
  taskId: string;
  attempt: number;
  workerId: string;
  /** On the deadline clock: unanswered by then, the offer is withdrawn; still unconfirmed a second time, the worker is dropped. */
  deadline: number;
  /**
   * The ack timeout passed and CancelTask was sent. The task is offered elsewhere only once this
   * worker confirms it does not run the attempt (Rejected, or its Finished), or is gone past its grace.
   */
  withdrawn: boolean;
}

export class OfferLedger {
  /** At most one open offer per task: its current attempt. */
  private readonly open = new Map<string, Offer>();
  /** Deadlines are FIFO because the ack timeout is constant. */
  private readonly deadlines: Offer[] = [];

  constructor(private readonly ackTimeoutMs: number) {}

  get size(): number {
    return this.open.size;
  }

  get(taskId: string): Offer | undefined {
    return this.open.get(taskId);
  }

  has(taskId: string): boolean {
    return this.open.has(taskId);
  }

  /** of is the open offer of this attempt to this worker, if that is what the task's offer is. */
  of(taskId: string, workerId: string, attempt: number): Offer | undefined {
    const offer = this.open.get(taskId);
    return offer?.workerId === workerId && offer.attempt === attempt ? offer : undefined;
  }

  /** withdrawnFrom: this attempt's offer to this worker was withdrawn and awaits its confirmation. */
  withdrawnFrom(taskId: string, workerId: string, attempt: number): boolean {
    return this.of(taskId, workerId, attempt)?.withdrawn === true;
  }

  /** toWorker lists the open offers to a worker. */
  toWorker(workerId: string): Offer[] {
    return [...this.open.values()].filter((o) => o.workerId === workerId);
  }

  /** add opens the offer of a task's new attempt, due an answer one ack timeout from clock. */
  add(taskId: string, attempt: number, workerId: string, clock: number): Offer {
    const offer: Offer = { taskId, attempt, workerId, deadline: clock + this.ackTimeoutMs, withdrawn: false };
    this.open.set(taskId, offer);
    this.deadlines.push(offer);
    return offer;
  }

  /** close ends a task's offer: answered, taken back, or the task ended. */
  close(taskId: string): void {
    this.open.delete(taskId);
  }

  /** due takes the open offers whose deadline is at or before clock, soonest first. */
  due(clock: number): Offer[] {
    const due: Offer[] = [];
    while (this.deadlines.length > 0 && this.deadlines[0]!.deadline <= clock) {
      const offer = this.deadlines.shift()!;
      if (this.open.get(offer.taskId) === offer) due.push(offer);
    }
    return due;
  }

  /** withdraw marks an unanswered offer withdrawn: its worker has one more ack timeout to confirm it. */
  withdraw(offer: Offer, clock: number): void {
    offer.withdrawn = true;
    offer.deadline = clock + this.ackTimeoutMs;
    this.deadlines.push(offer);
  }
}
