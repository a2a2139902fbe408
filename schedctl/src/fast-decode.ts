// A faster protobuf-es fromBinary() for the listings: `workers ls` and
// `tasks ls` decode thousands of Workers and Tasks, and protobuf-es decodes
// each message through a reflection wrapper (a ReflectMessage, a Map of its
// fields by number, an array per tag, a generic field switch), which made
// decoding the largest part of a listing's own time, and of its garbage.
//
// This decodes straight into the same plain objects protobuf-es makes: per
// message type, a decoder is generated once from its descriptor (a switch on
// the tags, the zero message as one object literal, as protobufjs does), so
// that each is a small monomorphic function V8 runs fast even cold, in a
// process that lives for one listing. The generated source holds nothing but
// the descriptor's field names (quoted with JSON.stringify), numbers and zero
// values; every read is a method of wire-reader.ts.
//
// It covers what proto3 messages like ours use. For anything else it steps
// aside and fromBinary() decodes the whole message, so the result (or the
// error) is always protobuf-es's own:
//
// - a descriptor it does not cover (not proto3, oneofs, proto3 `optional`,
//   groups, closed enums, maps with non-string keys or 64-bit or message
//   values, google.protobuf types, which protobuf-es unwraps);
// - input it does not expect: unknown fields (protobuf-es keeps them in
//   $unknown), a wire type that does not match the field, bad lengths or
//   varints, a string that is not plain UTF-8 (see wire-reader.ts).
//
// test/unit/schedctl-fast-decode.test.ts compares both on random messages.
import { create, fromBinary, ScalarType, type DescField, type DescMessage, type MessageShape } from '@bufbuild/protobuf';
import { BIT32, BIT64, LENGTH_DELIMITED, newSlot, Reader, STEP_ASIDE, VARINT } from './wire-reader.js';

const EDITION_PROTO3 = 999;
const IMPLICIT = 2;

type Msg = Record<string, unknown>;
/** A generated decoder: the message from r.pos to end, merged into `into` if given. */
type Decoder = (r: Reader, end: number, into: Msg | undefined) => Msg;

/** Decoders by descriptor; null for a message type this does not cover. */
const decoders = new WeakMap<DescMessage, Decoder | null>();

function wireOf(t: ScalarType): number {
  switch (t) {
    case ScalarType.DOUBLE:
    case ScalarType.FIXED64:
    case ScalarType.SFIXED64:
      return BIT64;
    case ScalarType.FLOAT:
    case ScalarType.FIXED32:
    case ScalarType.SFIXED32:
      return BIT32;
    case ScalarType.STRING:
    case ScalarType.BYTES:
      return LENGTH_DELIMITED;
    default:
      return VARINT;
  }
}

const is64 = (t: ScalarType) =>
  t === ScalarType.INT64 || t === ScalarType.UINT64 || t === ScalarType.SINT64 || t === ScalarType.FIXED64 || t === ScalarType.SFIXED64;

/**
 * The expression reading one value of a scalar type (enums are INT32), bounded by the variable
 * `bound`; `slot` for a singular int64 field (see newSlot in wire-reader.ts).
 */
function readExpr(t: ScalarType, longAsString: boolean, bound: string, slot = -1): string {
  switch (t) {
    case ScalarType.STRING:
      return `r.string(${bound})`;
    case ScalarType.BOOL:
      return 'r.bool()';
    case ScalarType.INT32:
      return 'r.int32()';
    case ScalarType.UINT32:
      return 'r.uint32()';
    case ScalarType.SINT32:
      return 'r.sint32()';
    case ScalarType.INT64:
    case ScalarType.UINT64:
    case ScalarType.SINT64:
      return `r.long(${t}, ${longAsString}, ${slot})`;
    case ScalarType.FIXED64:
    case ScalarType.SFIXED64:
      return `r.fixedLong(${t}, ${longAsString}, ${bound})`;
    case ScalarType.DOUBLE:
      return `r.double(${bound})`;
    case ScalarType.FLOAT:
      return `r.float(${bound})`;
    case ScalarType.FIXED32:
      return `r.fixed32(${bound})`;
    case ScalarType.SFIXED32:
      return `r.sfixed32(${bound})`;
    case ScalarType.BYTES:
      return `r.bytes(${bound})`;
  }
}

/** A zero value of create()'s message as source: primitives as literals, fresh lists, maps and byte arrays. */
function zeroSource(value: unknown): string | undefined {
  if (Array.isArray(value)) return value.length === 0 ? '[]' : undefined;
  if (value instanceof Uint8Array) return value.length === 0 ? 'new Uint8Array(0)' : undefined;
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'number':
      return Object.is(value, -0) ? '-0' : Number.isFinite(value) ? String(value) : undefined;
    case 'boolean':
      return String(value);
    case 'bigint':
      return `${value}n`;
    case 'object':
      return value !== null && Object.keys(value).length === 0 && Object.getPrototypeOf(value) === Object.prototype ? '{}' : undefined;
    default:
      return undefined;
  }
}

/** The switch cases of one field, or undefined if it is not covered; `subs` collects nested message types. */
function fieldCases(f: DescField, subs: DescMessage[]): string | undefined {
  if (f.oneof || ('delimitedEncoding' in f && f.delimitedEncoding)) return undefined;
  const prop = `m[${JSON.stringify(f.localName)}]`;
  const tag = (wire: number) => (f.number << 3) | wire;
  const sub = (d: DescMessage) => `sub[${subs.push(d) - 1}]`;
  switch (f.fieldKind) {
    case 'scalar':
      if (f.presence !== IMPLICIT) return undefined;
      return `case ${tag(wireOf(f.scalar))}: ${prop} = ${readExpr(f.scalar, f.longAsString, 'end', is64(f.scalar) ? newSlot() : -1)}; break;`;
    case 'enum':
      if (!f.enum.open || f.presence !== IMPLICIT) return undefined;
      return `case ${tag(VARINT)}: ${prop} = r.int32(); break;`;
    case 'message':
      // A message field seen twice is merged, as protobuf-es does.
      return `case ${tag(LENGTH_DELIMITED)}: { const stop = r.delimited(end); ${prop} = ${sub(f.message)}(r, stop, ${prop}); break; }`;
    case 'list': {
      if (f.listKind === 'message') {
        return `case ${tag(LENGTH_DELIMITED)}: { const stop = r.delimited(end); ${prop}.push(${sub(f.message)}(r, stop, undefined)); break; }`;
      }
      const t = f.listKind === 'enum' ? ScalarType.INT32 : f.scalar;
      const asString = f.listKind === 'scalar' && f.longAsString;
      const one = `case ${tag(wireOf(t))}: ${prop}.push(${readExpr(t, asString, 'end')}); break;`;
      if (wireOf(t) === LENGTH_DELIMITED) return one;
      // Numbers also come packed: one length-delimited run.
      const packed = `case ${tag(LENGTH_DELIMITED)}: { const stop = r.delimited(end), list = ${prop}; while (r.pos < stop) list.push(${readExpr(t, asString, 'stop')}); if (r.pos !== stop) throw STEP_ASIDE; break; }`;
      return `${one}\n${packed}`;
    }
    case 'map': {
      if (f.mapKey !== ScalarType.STRING || f.mapKind === 'message') return undefined;
      const t = f.mapKind === 'enum' ? ScalarType.INT32 : f.scalar;
      if (is64(t)) return undefined;
      return `case ${tag(LENGTH_DELIMITED)}: mapEntry(r, r.delimited(end), ${prop}, ${(2 << 3) | wireOf(t)}, ${t}); break;`;
    }
  }
}

/** A map entry: key = 1, value = 2; a missing one is its zero value, as in protobuf-es. */
function mapEntry(r: Reader, stop: number, map: Msg, valueTag: number, type: ScalarType): void {
  let key: string | undefined;
  let value: unknown;
  while (r.pos < stop) {
    const tag = r.tag();
    if (tag === ((1 << 3) | LENGTH_DELIMITED)) key = r.string(stop);
    else if (tag === valueTag) value = r.scalar(type, stop);
    else throw STEP_ASIDE;
  }
  if (r.pos !== stop) throw STEP_ASIDE;
  map[key ?? ''] = value ?? (type === ScalarType.STRING ? '' : type === ScalarType.BOOL ? false : type === ScalarType.BYTES ? new Uint8Array(0) : 0);
}

function decoderOf(desc: DescMessage): Decoder | null {
  const known = decoders.get(desc);
  if (known !== undefined) return known;
  const none = () => (decoders.set(desc, null), null);
  if (desc.file.edition !== EDITION_PROTO3 || desc.oneofs.length > 0 || desc.typeName.startsWith('google.protobuf.')) return none();
  const subDescs: DescMessage[] = [];
  const cases: string[] = [];
  for (const f of desc.fields) {
    const c = fieldCases(f, subDescs);
    if (c === undefined) return none();
    cases.push(c);
  }
  const zero: string[] = [];
  for (const [key, value] of Object.entries(create(desc))) {
    const source = zeroSource(value);
    if (source === undefined) return none();
    zero.push(`${JSON.stringify(key)}: ${source}`);
  }
  const body = `return function decode(r, end, into) {
  const m = into ?? { ${zero.join(', ')} };
  while (r.pos < end) {
    switch (r.tag()) {
      ${cases.join('\n      ')}
      default: throw STEP_ASIDE;
    }
  }
  if (r.pos !== end) throw STEP_ASIDE;
  return m;
};`;
  // Nested types are looked up on first use (through `sub`), so a type that contains itself works.
  const sub: Decoder[] = [];
  const decode = new Function('sub', 'mapEntry', 'STEP_ASIDE', body)(sub, mapEntry, STEP_ASIDE) as Decoder;
  decoders.set(desc, decode);
  for (const d of subDescs) {
    const s = decoderOf(d);
    if (!s) return none();
    sub.push(s);
  }
  return decode;
}

/** fromBinary(schema, bytes), faster for the messages it covers (see the top of this file). */
export function fastFromBinary<D extends DescMessage>(schema: D, bytes: Uint8Array): MessageShape<D> {
  const decode = decoderOf(schema);
  if (decode) {
    try {
      return decode(new Reader(bytes), bytes.length, undefined) as MessageShape<D>;
    } catch {
      // STEP_ASIDE, or anything else: fromBinary gives the answer, or the error, protobuf-es gives.
    }
  }
  return fromBinary(schema, bytes);
}

/**
 * fastFromBinary(schema, bytes[start, end)) where `reader` reads `bytes`: an
 * item of a page (paging.ts), decoded with the page's reader instead of a
 * reader (and a view) of its own.
 */
export function fastFromBinaryAt<D extends DescMessage>(schema: D, reader: Reader, start: number, end: number): MessageShape<D> {
  const decode = decoderOf(schema);
  if (decode) {
    try {
      reader.pos = start;
      return decode(reader, end, undefined) as MessageShape<D>;
    } catch {
      // As in fastFromBinary.
    }
  }
  return fromBinary(schema, reader.src.subarray(start, end));
}

/** Whether fastFromBinary decodes this message type itself (for the tests). */
export const covers = (schema: DescMessage): boolean => decoderOf(schema) !== null;
