/**
 * The applied offset when replies come back out of order (a cluster target answers from
 * several nodes): each command takes a ticket in stream order; the offset advances to a
 * command's end only when it and every command before it are done.
 */
export class OffsetTracker {
  private nextTicket = 0;
  private firstPending = 0;
  /** Done flags and offsets of tickets from firstPending on. */
  private readonly done = new Map<number, [offset: number, db: number]>();
  private pendingOffsets = new Map<number, [offset: number, db: number]>();

  constructor(private readonly onAdvance: (offset: number, db: number) => void) {}

  /**
   * A ticket for a command that ends at `offset`, after which the stream's database is `db`;
   * call the returned function when the command is applied.
   */
  take(offset: number, db = 0): () => void {
    const ticket = this.nextTicket++;
    this.pendingOffsets.set(ticket, [offset, db]);
    return () => this.complete(ticket);
  }

  get outstanding(): number {
    return this.nextTicket - this.firstPending;
  }

  private complete(ticket: number): void {
    const offset = this.pendingOffsets.get(ticket);
    if (offset === undefined) return; // completed twice: ignore
    this.pendingOffsets.delete(ticket);
    this.done.set(ticket, offset);
    let advanced: [number, number] | null = null;
    while (this.done.has(this.firstPending)) {
      advanced = this.done.get(this.firstPending)!;
      this.done.delete(this.firstPending);
      this.firstPending++;
    }
    if (advanced !== null) this.onAdvance(advanced[0], advanced[1]);
  }
}
