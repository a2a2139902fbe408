// The paged listings (ListTasks, ListWorkers), fetched as fast as the
// manager answers:
//
// - each page is asked for as soon as the page before it says where it
//   ends: its answer is kept as bytes, and a shallow scan finds the page's
//   size and next_page_token, so the manager prepares page n+1 while page n
//   is decoded here (two processes, on two cores, instead of taking turns);
// - pages are decoded by fast-decode.ts instead of protobuf-es's fromBinary;
// - the calls go over plain HTTP/2 when they can (h2-unary.ts), else through
//   the grpc-js client (grpc-bytes.ts), each with the usual deadline: that is
//   the caller's `BytesCall` (Ctx.unaryBytes, made in runtime.ts).
import type { DescMessage, MessageInitShape, MessageShape } from '@bufbuild/protobuf';
import { fastFromBinary, fastFromBinaryAt } from './fast-decode.js';
import { LENGTH_DELIMITED, Reader, VARINT } from './wire-reader.js';

/** A unary method's descriptor (ManagementService.method.*), as much as a call needs. */
export interface UnaryMethod<I extends DescMessage> {
  name: string;
  parent: { typeName: string };
  input: I;
}

/** A unary call whose answer is handed over as bytes. */
export type BytesCall = <I extends DescMessage>(method: UnaryMethod<I>, req: MessageInitShape<I>) => Promise<Buffer>;

/** An answer that does not decode; collect() turns it into grpc-js's error for it (grpc-bytes.ts). */
class Undecodable {
  constructor(readonly cause: unknown) {}
}

function decodeAnswer<O extends DescMessage>(schema: O, bytes: Buffer): MessageShape<O> {
  try {
    return fastFromBinary(schema, bytes);
  } catch (e) {
    throw new Undecodable(e);
  }
}

/** What scanPage finds: the number of items, where each is (start, end, start, end, ...), the token, the total. */
interface Scan {
  count: number;
  ranges: number[];
  token: string;
  /** Field `totalNo` (a uint32) if the page has one. */
  total: number | undefined;
}

/**
 * How many items a page holds (occurrences of field `listNo`), where each
 * one's bytes are, its next page token (field `tokenNo`) and its total (field
 * `totalNo`, a varint), without decoding the items. Other varint fields (a
 * listing's revision) are stepped over; for anything else it is undefined
 * (then the page is decoded whole, first).
 */
export function scanPage(bytes: Buffer, listNo: number, tokenNo: number, totalNo = 0): Scan | undefined {
  const r = new Reader(bytes);
  const ranges: number[] = [];
  let token = '';
  let total: number | undefined;
  try {
    while (r.pos < bytes.length) {
      const tag = r.tag();
      if (tag === ((listNo << 3) | LENGTH_DELIMITED)) {
        const end = r.delimited(bytes.length);
        ranges.push(r.pos, end);
        r.pos = end;
      } else if (tag === ((tokenNo << 3) | LENGTH_DELIMITED)) {
        // The last one wins, as when decoding.
        token = r.string(bytes.length);
      } else if ((tag & 7) === VARINT && tag >>> 3 !== 0 && tag >>> 3 !== listNo && tag >>> 3 !== tokenNo) {
        const n = r.uint32();
        if (tag >>> 3 === totalNo) total = n;
      } else {
        return undefined;
      }
    }
    return r.pos === bytes.length ? { count: ranges.length / 2, ranges, token, total } : undefined;
  } catch {
    return undefined;
  }
}

export interface Listing<O extends DescMessage, I extends DescMessage> {
  /** The response type; `listNo` its repeated items, of type `itemSchema`; `tokenNo` its next_page_token. */
  schema: O;
  itemSchema: I;
  listNo: number;
  tokenNo: number;
  items(page: MessageShape<O>): Array<MessageShape<I>>;
  nextPageToken(page: MessageShape<O>): string;
  /** The response's total (how many match, over every page) and its field number, when it has one. */
  total?: { no: number; of(page: MessageShape<O>): number };
  /** Asks for the page after `pageToken`, at most `room` items (Infinity: no limit). */
  fetch(pageToken: string, room: number): Promise<Buffer>;
}

/** What collect() gathered: the items (unless handed to `each`), whether some were left out, the first page's total. */
export interface Collected<I extends DescMessage> {
  items: Array<MessageShape<I>>;
  more: boolean;
  /** How many match in all, as the first page said (0 if the listing has no total, or the server did not say). */
  total: number;
}

/**
 * Pages through a listing until `limit` items are collected (0: all) or the
 * server has no more; `more` says whether items were left out. The end is a
 * page without a token, an empty page, or a token that does not move (never
 * loop forever).
 *
 * With `each`, items are handed to it one by one as they come instead of
 * being collected (`items` is then empty), each decoded on its own from its
 * bytes in the page (what decoding the page would give it: the items of a
 * repeated field are independent): then an item is garbage as soon as `each`
 * is done with it, instead of a whole page of them (a thousand tasks, ~15
 * objects each) being alive, and copied, whenever the garbage collector runs.
 */
export async function collect<O extends DescMessage, I extends DescMessage>(
  listing: Listing<O, I>,
  limit: number,
  each?: (item: MessageShape<I>) => void,
): Promise<Collected<I>> {
  try {
    return await collectPages(listing, limit, each);
  } catch (err) {
    if (err instanceof Undecodable) throw (await import('./grpc-bytes.js')).parsingError(err.cause);
    throw err;
  }
}

async function collectPages<O extends DescMessage, I extends DescMessage>(
  listing: Listing<O, I>,
  limit: number,
  each?: (item: MessageShape<I>) => void,
): Promise<Collected<I>> {
  const items: Array<MessageShape<I>> = [];
  let total: number | undefined;
  let taken = 0;
  let pageToken = '';
  let pending = listing.fetch(pageToken, limit === 0 ? Infinity : limit);
  for (;;) {
    const room = limit === 0 ? Infinity : limit - taken;
    const bytes = await pending;
    // Where the page ends, before decoding it: the next request goes out first.
    const scan = scanPage(bytes, listing.listNo, listing.tokenNo, listing.total?.no);
    let page: Array<MessageShape<I>> | undefined;
    let count: number;
    let next: string;
    if (scan) {
      ({ count, token: next } = scan);
      total ??= scan.total ?? 0;
    } else {
      const decoded = decodeAnswer(listing.schema, bytes);
      page = listing.items(decoded);
      count = page.length;
      next = listing.nextPageToken(decoded);
      total ??= listing.total?.of(decoded) ?? 0;
    }
    const end = !next || count === 0 || next === pageToken;
    if (count < room && !end) {
      pending = listing.fetch(next, room - count);
      // Awaited on the next turn; until then its failure is not unhandled.
      pending.catch(() => undefined);
      // Node's HTTP/2 sends what a request queued from an immediate: let it go out
      // before this page is decoded, or the manager would wait for that too.
      await new Promise((resolve) => setImmediate(resolve));
    }
    const n = Math.min(count, room);
    if (each && scan && !page) {
      const reader = new Reader(bytes);
      for (let i = 0; i < n; i++) each(decodeItem(listing, reader, scan.ranges[2 * i]!, scan.ranges[2 * i + 1]!));
    } else {
      page ??= listing.items(decodeAnswer(listing.schema, bytes));
      for (let i = 0; i < n; i++) {
        if (each) each(page[i]!);
        else items.push(page[i]!);
      }
    }
    taken += n;
    if (count >= room) return { items, more: count > room || !end, total: total ?? 0 };
    if (end) return { items, more: false, total: total ?? 0 };
    pageToken = next;
  }
}

/** One item of a page; if it does not decode, the page's own decoding gives the error. */
function decodeItem<O extends DescMessage, I extends DescMessage>(listing: Listing<O, I>, reader: Reader, start: number, end: number): MessageShape<I> {
  try {
    return fastFromBinaryAt(listing.itemSchema, reader, start, end);
  } catch {
    decodeAnswer(listing.schema, reader.buf);
    throw new Undecodable(new Error('an item of the page did not decode'));
  }
}
