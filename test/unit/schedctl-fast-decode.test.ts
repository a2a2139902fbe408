// schedctl's fast decoder (schedctl/src/fast-decode.ts) must give exactly
// what protobuf-es's fromBinary gives: same message objects from any valid
// encoding, and protobuf-es's own answer (or error) for anything else.
import { expect } from 'chai';
import fc from 'fast-check';
import { create, fromBinary, ScalarType, toBinary, type DescField, type DescMessage } from '@bufbuild/protobuf';
import { ManagementService, ListTasksResponseSchema, ListWorkersResponseSchema } from '../../proto/gen/schedapi/v1/management_pb.js';
import { TaskSchema, TaskState, WorkerSchema } from '../../proto/gen/schedapi/v1/types_pb.js';
import { covers, fastFromBinary, fastFromBinaryAt } from '../../schedctl/src/fast-decode.js';
import { Reader } from '../../schedctl/src/wire-reader.js';

function scalarArb(t: ScalarType): fc.Arbitrary<unknown> {
  switch (t) {
    case ScalarType.STRING:
      return fc.oneof(fc.string(), fc.string({ unit: 'binary' }), fc.constantFrom('\uFEFFbom', 'a\uFFFDb', ''));
    case ScalarType.BOOL:
      return fc.boolean();
    case ScalarType.INT32:
    case ScalarType.SINT32:
    case ScalarType.SFIXED32:
      return fc.integer();
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return fc.integer({ min: 0, max: 2 ** 32 - 1 });
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
      return fc.oneof(fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }), fc.bigInt({ min: 0n, max: 2n ** 45n }));
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return fc.oneof(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.bigInt({ min: 0n, max: 2n ** 45n }));
    case ScalarType.DOUBLE:
      return fc.double();
    case ScalarType.FLOAT:
      return fc.float();
    case ScalarType.BYTES:
      return fc.uint8Array({ maxLength: 8 });
  }
}

function fieldArb(f: DescField, depth: number): fc.Arbitrary<unknown> {
  switch (f.fieldKind) {
    case 'scalar':
      return scalarArb(f.scalar);
    case 'enum':
      // Open enums keep numbers they do not name.
      return fc.oneof(fc.constantFrom(...f.enum.values.map((v) => v.number)), fc.integer({ min: -5, max: 99 }));
    case 'message':
      return depth > 0 ? messageArb(f.message, depth - 1) : fc.constant(undefined);
    case 'list':
      return fc.array(
        f.listKind === 'message' ? messageArb(f.message, Math.max(0, depth - 1)) : f.listKind === 'enum' ? fc.integer({ min: 0, max: 5 }) : scalarArb(f.scalar),
        { maxLength: 4 },
      );
    case 'map':
      return fc.dictionary(fc.string({ maxLength: 6 }), f.mapKind === 'enum' ? fc.integer({ min: 0, max: 5 }) : f.mapKind === 'scalar' ? scalarArb(f.scalar) : fc.constant({}), { maxKeys: 3 });
  }
}

/** Any message of the type, as an init object for create(). */
function messageArb(desc: DescMessage, depth = 2): fc.Arbitrary<Record<string, unknown>> {
  const shape: Record<string, fc.Arbitrary<unknown>> = {};
  for (const f of desc.fields) shape[f.localName] = fieldArb(f, depth);
  return fc.record(shape, { requiredKeys: [] });
}

/** Both decoders on the same bytes: equal messages, or both throw. */
function same(desc: DescMessage, bytes: Uint8Array): void {
  let want: unknown;
  let wantErr: unknown;
  try {
    want = fromBinary(desc, bytes);
  } catch (err) {
    wantErr = err;
  }
  if (wantErr) {
    expect(() => fastFromBinary(desc, bytes)).to.throw();
    return;
  }
  expect(fastFromBinary(desc, bytes)).to.deep.equal(want);
}

// WatchEventsResponse has a oneof, which the fast decoder leaves to fromBinary (schedctl events
// reads it through grpc-js's protobuf-es decoding); the property test below still covers it.
const responses = ManagementService.methods.map((m) => m.output);
const fastResponses = responses.filter((r) => r.typeName !== 'schedapi.v1.WatchEventsResponse');

describe('schedctl fast decoding', () => {
  it('decodes the listings and every ManagementService answer itself', () => {
    for (const desc of [ListTasksResponseSchema, ListWorkersResponseSchema, TaskSchema, WorkerSchema, ...fastResponses]) {
      expect(covers(desc), desc.typeName).to.equal(true);
    }
  });

  it('gives what fromBinary gives for any message (and as a Buffer, which gRPC hands over)', () => {
    for (const desc of [TaskSchema, WorkerSchema, ...responses]) {
      fc.assert(
        fc.property(messageArb(desc), (init) => {
          const bytes = toBinary(desc, create(desc, init));
          same(desc, bytes);
          same(desc, Buffer.from(bytes));
          // bytes fields are views of the input, of its class.
          expect(fastFromBinary(desc, Buffer.from(bytes))).to.deep.equal(fromBinary(desc, Buffer.from(bytes)));
        }),
        { numRuns: 150 },
      );
    }
  });

  it('gives what fromBinary gives for damaged bytes too', () => {
    for (const desc of [TaskSchema, ListWorkersResponseSchema]) {
      fc.assert(
        fc.property(messageArb(desc), fc.nat(), fc.integer({ min: 0, max: 255 }), fc.nat(), (init, at, byte, cut) => {
          const bytes = toBinary(desc, create(desc, init));
          if (bytes.length === 0) return;
          const changed = bytes.slice();
          changed[at % bytes.length] = byte;
          same(desc, changed);
          same(desc, bytes.subarray(0, cut % bytes.length));
        }),
        { numRuns: 300 },
      );
    }
  });

  it('merges a repeated message field, takes packed and unpacked lists, keeps unknown fields as fromBinary does', () => {
    const a = toBinary(TaskSchema, create(TaskSchema, { id: 't', spec: { argv: ['a'], cwd: '/x' } }));
    const b = toBinary(TaskSchema, create(TaskSchema, { spec: { argv: ['b'], priority: 3 }, state: TaskState.DONE }));
    same(TaskSchema, Uint8Array.from([...a, ...b]));
    expect(fastFromBinary(TaskSchema, Uint8Array.from([...a, ...b])).spec?.argv).to.deep.equal(['a', 'b']);
    // Worker.load_avg (13): packed, then one unpacked double.
    const w = toBinary(WorkerSchema, create(WorkerSchema, { id: 'w', loadAvg: [0.5, 1.5] }));
    const unpacked = new Uint8Array(9);
    unpacked[0] = (13 << 3) | 1;
    new DataView(unpacked.buffer).setFloat64(1, 2.5, true);
    same(WorkerSchema, Uint8Array.from([...w, ...unpacked]));
    expect(fastFromBinary(WorkerSchema, Uint8Array.from([...w, ...unpacked])).loadAvg).to.deep.equal([0.5, 1.5, 2.5]);
    // Field 99, a varint: unknown to this client.
    const unknown = Uint8Array.from([...a, (99 << 3) >> 0 & 0x7f | 0x80, 99 >> 4, 7]);
    same(TaskSchema, unknown);
    expect(fastFromBinary(TaskSchema, unknown).$unknown).to.have.length(1);
  });

  it('decodes an item where it lies in a page as on its own, times shared or not', () => {
    fc.assert(
      fc.property(fc.array(messageArb(TaskSchema, 1), { maxLength: 6 }), fc.boolean(), (inits, sameTimes) => {
        const tasks = inits.map((init) => create(TaskSchema, sameTimes ? { ...init, createdUnixMs: 1_700_000_000_123n, startedUnixMs: -1n } : init));
        const page = Buffer.from(toBinary(ListTasksResponseSchema, create(ListTasksResponseSchema, { tasks, nextPageToken: 'n' })));
        const reader = new Reader(page);
        // Field 1 entries: tag, length, the task.
        const items: Array<[number, number]> = [];
        while (reader.pos < page.length) {
          const tag = reader.tag();
          const end = reader.delimited(page.length);
          if (tag >> 3 === 1) items.push([reader.pos, end]);
          reader.pos = end;
        }
        expect(items.map(([s, e]) => fastFromBinaryAt(TaskSchema, reader, s, e))).to.deep.equal(fromBinary(ListTasksResponseSchema, page).tasks);
      }),
      { numRuns: 200 },
    );
  });

  it('reads UTF-8 beyond ASCII, and steps aside for invalid UTF-8', () => {
    const t = create(TaskSchema, { id: 'ünïcødé ✓ 😀', pendingReason: 'a\u0000b' });
    same(TaskSchema, toBinary(TaskSchema, t));
    const bad = Uint8Array.from([(1 << 3) | 2, 2, 0xc3, 0x28]);
    expect(() => fromBinary(TaskSchema, bad)).to.throw();
    expect(() => fastFromBinary(TaskSchema, bad)).to.throw();
  });
});
