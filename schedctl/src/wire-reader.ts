// The byte-level reads of fast-decode.ts: protobuf's wire format, read as
// protobuf-es's BinaryReader reads it (varints up to 10 bytes, int64 as
// bigint, bytes as views of the input), except that anything unusual throws
// STEP_ASIDE so that fromBinary() decodes the message instead (see there).
import { ScalarType } from '@bufbuild/protobuf';

/** Thrown to step aside; fastFromBinary catches it and never lets it out. */
export class StepAside extends Error {}
export const STEP_ASIDE = new StepAside('fast-decode: not covered');

export const VARINT = 0;
export const BIT64 = 1;
export const LENGTH_DELIMITED = 2;
export const BIT32 = 5;

/**
 * The last value read by each int64 field of the generated decoders (a slot
 * per field, newSlot()), by its halves: the next message with the same value
 * gets the same BigInt instead of a new one (the tasks of one run share their
 * times, to the millisecond, in thousands). A BigInt is a value, not an
 * object one could tell apart: sharing it changes nothing but the garbage.
 */
const lastLo: number[] = [];
const lastHi: number[] = [];
const lastValue: Array<bigint | string> = [];
export const newSlot = (): number => lastValue.push(0n) - 1;

/** A reading position over one input. Every read checks its bounds. */
export class Reader {
  pos = 0;
  /** The last 64-bit varint's unsigned halves (fields, not a returned pair: no garbage per value). */
  private lo = 0;
  private hi = 0;
  /** `src` as a Buffer, for its UTF-8 decoding; bytes fields are views of `src` itself, as in protobuf-es. */
  readonly buf: Buffer;
  private readonly view: DataView;

  constructor(readonly src: Uint8Array) {
    this.buf = Buffer.isBuffer(src) ? src : Buffer.from(src.buffer, src.byteOffset, src.byteLength);
    this.view = new DataView(src.buffer, src.byteOffset, src.byteLength);
  }

  /** A field's tag; a tag longer than a uint32 is an error in protobuf-es. */
  tag(): number {
    const start = this.pos;
    const tag = this.uint32();
    if (this.pos - start >= 5 && (this.pos - start > 5 || this.buf[this.pos - 1]! > 0x0f)) throw STEP_ASIDE;
    return tag;
  }

  /** As protobuf-es's varint32read: up to 10 bytes, the low 32 bits, unsigned. */
  uint32(): number {
    const buf = this.buf;
    // Past the end buf[i] is undefined: every comparison below is false, and the end check throws.
    let b = buf[this.pos++]!;
    if (b < 0x80) return b;
    let result = b & 0x7f;
    b = buf[this.pos++]!;
    result |= (b & 0x7f) << 7;
    if (b < 0x80) return result;
    b = buf[this.pos++]!;
    result |= (b & 0x7f) << 14;
    if (b < 0x80) return result;
    b = buf[this.pos++]!;
    result |= (b & 0x7f) << 21;
    if (b < 0x80) return result;
    b = buf[this.pos++]!;
    result |= (b & 0x0f) << 28;
    for (let n = 5; b >= 0x80; n++) {
      if (n === 10) throw STEP_ASIDE;
      b = buf[this.pos++]!;
    }
    if (b === undefined || this.pos > buf.length) throw STEP_ASIDE;
    return result >>> 0;
  }

  int32(): number {
    return this.uint32() | 0;
  }

  sint32(): number {
    const n = this.uint32();
    return (n >>> 1) ^ -(n & 1);
  }

  bool(): boolean {
    this.varint64();
    return this.lo !== 0 || this.hi !== 0;
  }

  /** int64, uint64 and sint64 varints; `slot` (newSlot()) is the field's, or -1. */
  long(type: ScalarType, asString: boolean, slot = -1): bigint | string {
    this.varint64();
    const { lo, hi } = this;
    if (slot < 0) return toLong(lo, hi, type, asString);
    if (lastLo[slot] === lo && lastHi[slot] === hi) return lastValue[slot]!;
    lastLo[slot] = lo;
    lastHi[slot] = hi;
    return (lastValue[slot] = toLong(lo, hi, type, asString));
  }

  /** fixed64 and sfixed64. */
  fixedLong(type: ScalarType, asString: boolean, end: number): bigint | string {
    const at = this.skip(8, end);
    return toLong(this.view.getUint32(at, true), this.view.getUint32(at + 4, true), type, asString);
  }

  double(end: number): number {
    return this.view.getFloat64(this.skip(8, end), true);
  }

  float(end: number): number {
    return this.view.getFloat32(this.skip(4, end), true);
  }

  fixed32(end: number): number {
    return this.view.getUint32(this.skip(4, end), true);
  }

  sfixed32(end: number): number {
    return this.view.getInt32(this.skip(4, end), true);
  }

  /** The end of a length-delimited value that starts here (at most `end`). */
  delimited(end: number): number {
    const len = this.uint32();
    const stop = this.pos + len;
    if (stop > end) throw STEP_ASIDE;
    return stop;
  }

  string(end: number): string {
    const stop = this.delimited(end);
    const s = this.buf.toString('utf8', this.pos, stop);
    this.pos = stop;
    // U+FFFD: invalid UTF-8 (protobuf-es may reject it) or a real U+FFFD; U+FEFF first: a BOM, which protobuf-es drops.
    if (s.includes('\uFFFD') || s.charCodeAt(0) === 0xfeff) throw STEP_ASIDE;
    return s;
  }

  bytes(end: number): Uint8Array {
    const stop = this.delimited(end);
    const bytes = this.src.subarray(this.pos, stop);
    this.pos = stop;
    return bytes;
  }

  /** Any scalar, for the rarer places (map values). */
  scalar(type: ScalarType, end: number): unknown {
    switch (type) {
      case ScalarType.STRING:
        return this.string(end);
      case ScalarType.BOOL:
        return this.bool();
      case ScalarType.INT32:
        return this.int32();
      case ScalarType.UINT32:
        return this.uint32();
      case ScalarType.SINT32:
        return this.sint32();
      case ScalarType.INT64:
      case ScalarType.UINT64:
      case ScalarType.SINT64:
        return this.long(type, false);
      case ScalarType.FIXED64:
      case ScalarType.SFIXED64:
        return this.fixedLong(type, false, end);
      case ScalarType.DOUBLE:
        return this.double(end);
      case ScalarType.FLOAT:
        return this.float(end);
      case ScalarType.FIXED32:
        return this.fixed32(end);
      case ScalarType.SFIXED32:
        return this.sfixed32(end);
      case ScalarType.BYTES:
        return this.bytes(end);
    }
  }

  /** A 64-bit varint into lo and hi, as protobuf-es's varint64read. */
  private varint64(): void {
    const buf = this.buf;
    let lo = 0;
    let hi = 0;
    let b = 0;
    for (let shift = 0; shift < 28; shift += 7) {
      b = buf[this.pos++]!;
      lo |= (b & 0x7f) << shift;
      if (b < 0x80) return this.halves(lo, hi);
    }
    b = buf[this.pos++]!;
    lo |= (b & 0x0f) << 28;
    hi = (b & 0x70) >> 4;
    if (b < 0x80) return this.halves(lo, hi);
    for (let shift = 3; shift <= 31; shift += 7) {
      b = buf[this.pos++]!;
      hi |= (b & 0x7f) << shift;
      if (b < 0x80) return this.halves(lo, hi);
    }
    throw STEP_ASIDE;
  }

  private halves(lo: number, hi: number): void {
    if (this.pos > this.buf.length) throw STEP_ASIDE;
    this.lo = lo >>> 0;
    this.hi = hi >>> 0;
  }

  /** Moves past `n` bytes; where they start. */
  private skip(n: number, end: number): number {
    const at = this.pos;
    this.pos += n;
    if (this.pos > end) throw STEP_ASIDE;
    return at;
  }
}

/** A 64-bit integer from unsigned halves: a bigint as protobuf-es makes it, or its decimal string (jstype = JS_STRING). */
function toLong(lo: number, hi: number, type: ScalarType, asString: boolean): bigint | string {
  if (type === ScalarType.SINT64) {
    const s = -(lo & 1);
    lo = (((lo >>> 1) | ((hi & 1) << 31)) ^ s) >>> 0;
    hi = ((hi >>> 1) ^ s) >>> 0;
  }
  const unsigned = type === ScalarType.UINT64 || type === ScalarType.FIXED64;
  // Below 2^53 (timestamps, sizes, counts) a double holds it exactly.
  const value =
    hi < 0x200000
      ? BigInt(hi * 0x100000000 + lo)
      : unsigned
        ? BigInt.asUintN(64, (BigInt(hi) << 32n) | BigInt(lo))
        : BigInt.asIntN(64, (BigInt(hi) << 32n) | BigInt(lo));
  return asString ? value.toString() : value;
}
