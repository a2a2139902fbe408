import { randomBytes, randomUUID } from 'node:crypto';

let lastMs = 0;
let seq = 0;

/**
 * newTaskId returns a UUIDv7 (RFC 9562) that is monotonic within this process:
 * ids created in the same millisecond take a 12-bit counter (method 1 of
 * RFC 9562 §6.2), so task keys and listings sort exactly by submission.
 */
export function newTaskId(now = Date.now()): string {
  if (now > lastMs) {
    lastMs = now;
    seq = 0;
  } else if (++seq > 0xfff) {
    // 4,096 ids in one millisecond: borrow the next one.
    lastMs += 1;
    seq = 0;
  }
  const b = randomBytes(16);
  b.writeUIntBE(lastMs, 0, 6);
  b[6] = 0x70 | (seq >> 8);
  b[7] = seq & 0xff;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

export const newSessionId = (): string => randomUUID();
