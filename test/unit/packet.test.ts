/**
 * Outer packet layouts (src/wire/packet.ts, docs/PROTOCOL.md section 2) against
 * hand-written hex vectors, and the CREATE / REPLY / DATA packets the engine
 * actually puts on the wire checked field by field at the documented offsets.
 */
import { describe, it, expect } from "vitest";
import { aeadOpen } from "../../src/crypto/sodium.js";
import {
  AEAD_TAG_BYTES,
  CREATE_EXTRA_BYTES,
  HEADER_BYTES,
  RECORD_REQUEST_BYTES,
  REPLY_EXTRA_BYTES,
  TID_BYTES,
} from "../../src/tunnel/constants.js";
import {
  CREATE_AD_BYTES,
  CREATE_OFFSET_KEY_ID,
  CREATE_OFFSET_PUB,
  DATA_AD_BYTES,
  MIN_CREATE_BYTES,
  MIN_DATA_BYTES,
  MIN_REPLY_BYTES,
  OFFSET_COUNTER,
  OFFSET_TID,
  OFFSET_TYPE,
  PacketType,
  REPLY_AD_BYTES,
  REPLY_OFFSET_PUB,
  decodeRecordRequest,
  decodeRecordResponseHeader,
  decodeRecordBody,
  decodeStaleHeader,
  decodeStaleBody,
  encodeRecordRequest,
  encodeRecordResponse,
  encodeStale,
  readCounter,
  tidKeyOf,
  writeTypeCounter,
} from "../../src/wire/packet.js";
import { FrameIterator, FrameType } from "../../src/wire/frames.js";
import { ipVersion } from "../../src/ip/ip.js";
import { ipv4, makeCa, SimNet } from "../inproc/harness.js";

const hex = (s: string) => Buffer.from(s.replace(/[\s|]/g, ""), "hex");
const TID = hex("0102030405060708");

describe("header constants", () => {
  it("offsets and sizes are the documented ones", () => {
    expect([OFFSET_TID, OFFSET_TYPE, OFFSET_COUNTER]).toEqual([0, 8, 8]);
    expect([HEADER_BYTES, TID_BYTES, AEAD_TAG_BYTES]).toEqual([16, 8, 16]);
    expect([CREATE_OFFSET_KEY_ID, CREATE_OFFSET_PUB, CREATE_AD_BYTES, CREATE_EXTRA_BYTES]).toEqual([
      16, 20, 52, 36,
    ]);
    expect([REPLY_OFFSET_PUB, REPLY_AD_BYTES, REPLY_EXTRA_BYTES]).toEqual([16, 48, 32]);
    expect(DATA_AD_BYTES).toBe(16);
    expect([MIN_CREATE_BYTES, MIN_REPLY_BYTES, MIN_DATA_BYTES]).toEqual([68, 64, 32]);
    expect(PacketType).toEqual({
      Create: 1,
      Reply: 2,
      Data: 3,
      Stale: 4,
      RecordRequest: 5,
      RecordResponse: 6,
      Puzzle: 7,
      CreateSolved: 8,
    });
    expect(RECORD_REQUEST_BYTES).toBe(800);
  });
});

describe("header vectors", () => {
  it("TID (8) | type (1) | counter (56 bits BE)", () => {
    const b = Buffer.alloc(16);
    TID.copy(b, 0);
    writeTypeCounter(b, 0, PacketType.Data, 0x0d0e0f10111213);
    expect(b.toString("hex")).toBe("0102030405060708" + "03" + "0d0e0f10111213");
    expect(readCounter(b, 0)).toBe(0x0d0e0f10111213);
  });

  it("counter edge values", () => {
    const at = (type: number, n: number) => {
      const b = Buffer.alloc(16);
      writeTypeCounter(b, 0, type, n);
      return b.subarray(8).toString("hex");
    };
    expect(at(1, 0)).toBe("01" + "00000000000000");
    expect(at(2, 1)).toBe("02" + "00000000000001");
    expect(at(3, 2 ** 32)).toBe("03" + "00000100000000");
    expect(at(3, 2 ** 32 - 1)).toBe("03" + "000000ffffffff");
    expect(at(0xff, 2 ** 53 - 1)).toBe("ff" + "1fffffffffffff");
    expect(readCounter(hex("00".repeat(8) + "ff" + "1fffffffffffff"), 0)).toBe(2 ** 53 - 1);
    // 2^53 and above cannot be represented exactly: reported as -1
    expect(readCounter(hex("00".repeat(8) + "03" + "20000000000000"), 0)).toBe(-1);
    expect(readCounter(hex("00".repeat(8) + "03" + "ffffffffffffff"), 0)).toBe(-1);
    // the type byte is not part of the counter
    expect(readCounter(hex("00".repeat(8) + "ff" + "00000000000005"), 0)).toBe(5);
  });

  it("STALE: header | keyId u32 | responder's one-time key (32) | (ephLen u16 | certificate | padding) | tag room", () => {
    const r = Buffer.alloc(32, 0x33);
    const b = encodeStale(tidKeyOf(TID), 0xdeadbeef, r, Buffer.from("cert"), 80);
    expect(b.toString("hex")).toBe(
      "0102030405060708" +
        "04" +
        "00000000000000" +
        "deadbeef" +
        "33".repeat(32) +
        "0004" +
        "63657274" +
        "00".repeat(22),
    );
    expect(decodeStaleHeader(b, 0, b.length)).toEqual({ tid: tidKeyOf(TID), keyId: 0xdeadbeef, pub: r });
    expect(decodeStaleBody(b, 52, b.length - 52 - 16)).toEqual(Buffer.from("cert"));
    // without padding: exactly 52 + 2 + ephLen + 16
    expect(encodeStale(tidKeyOf(TID), 1, r, Buffer.from("c"), 0).length).toBe(71);
    // refused: short, wrong type; bodies with zero ephLen or ephLen past the end
    expect(decodeStaleHeader(b, 0, 69)).toBeNull();
    expect(decodeStaleHeader(hex("0102030405060708 05 00000000000000" + "00".repeat(60)), 0, 76)).toBeNull();
    expect(decodeStaleBody(hex("0000 00"), 0, 3)).toBeNull();
    expect(decodeStaleBody(hex("0002 00"), 0, 3)).toBeNull();
  });

  it("RECORD_REQUEST: header (counter 0) | requester's one-time key (32) | zero padding to the requested size", () => {
    const q = Buffer.alloc(32, 0x11);
    const b = encodeRecordRequest(tidKeyOf(TID), q, 56);
    expect(b.toString("hex")).toBe(
      "0102030405060708" + "05" + "00000000000000" + "11".repeat(32) + "0000000000000000",
    );
    expect(encodeRecordRequest(tidKeyOf(TID), q, RECORD_REQUEST_BYTES).length).toBe(800);
    expect(decodeRecordRequest(b, 0, 56)).toEqual({ tid: tidKeyOf(TID), pub: q });
    expect(decodeRecordRequest(b, 0, 47)).toBeNull();
  });

  it("RECORD_RESPONSE: header | responder's one-time key | (hostLen | host | ephLen | eph | padding) | tag room", () => {
    const r = Buffer.alloc(32, 0x22);
    const b = encodeRecordResponse(tidKeyOf(TID), r, hex("aabb"), hex("cc"), 76)!;
    expect(b.toString("hex")).toBe(
      "0102030405060708" +
        "06" +
        "00000000000000" +
        "22".repeat(32) +
        "0002" +
        "aabb" +
        "0001" +
        "cc" +
        "0000000000" +
        "00".repeat(16),
    );
    // needs 48 + 2 + 2 + 2 + 1 + 16 = 71 bytes
    expect(encodeRecordResponse(tidKeyOf(TID), r, hex("aabb"), hex("cc"), 71)!.length).toBe(71);
    expect(encodeRecordResponse(tidKeyOf(TID), r, hex("aabb"), hex("cc"), 70)).toBeNull();
    expect(decodeRecordResponseHeader(b, 0, b.length)).toEqual({ tid: tidKeyOf(TID), pub: r });
    expect(decodeRecordBody(b, 48, b.length - 48 - 16)).toEqual({ host: hex("aabb"), eph: hex("cc") });
  });
});

describe("packets the engine puts on the wire", () => {
  function capture() {
    const net = new SimNet();
    const ca = makeCa();
    const a = net.addHost(ca, "a", "192.0.2.1", 7000, "10.77.0.1", null);
    const b = net.addHost(ca, "b", "192.0.2.2", 7000, "10.77.0.2", null);
    a.engine.addPeer({ name: "b", endpoint: b.addr }, net.now);
    net.run();
    // the record request the engine sent is 800 bytes, type 5, counter 0
    const req = net.log.find((d) => d.data[8] === PacketType.RecordRequest)!;
    expect(req.data.length).toBe(RECORD_REQUEST_BYTES);
    expect(readCounter(req.data, 0)).toBe(0);
    const resp = net.log.find((d) => d.data[8] === PacketType.RecordResponse)!;
    expect(resp.data.length).toBe(RECORD_REQUEST_BYTES);
    expect(resp.data.subarray(0, 8)).toEqual(req.data.subarray(0, 8));
    return { net, a, b };
  }

  it("CREATE: keyId at 16, T_I at 20..52, AD = bytes 0..52, nonce = 0^4 | bytes 8..16, HELLO, CONN_OPEN, CONN_DATA", () => {
    const { net, a, b } = capture();
    const inner = ipv4("10.77.0.1", "10.77.0.2", "zero rtt");
    a.send(inner);
    const create = Buffer.from(net.queue[0]!.data);
    const ta = a.engine.peers.values().next().value!.sendTunnel()!;
    const c = ta.create!;
    expect(create[8]).toBe(PacketType.Create);
    expect(create.latin1Slice(0, 8)).toBe(ta.tid);
    expect(readCounter(create, 0)).toBe(0);
    expect(create.readUInt32BE(16)).toBe(b.engine.eph.current!.keyId);
    expect(create.subarray(20, 52)).toEqual(c.tI.publicKey);
    expect(create.length).toBeGreaterThanOrEqual(256); // the responder's minFirstPacket
    const nonce = Buffer.concat([Buffer.alloc(4), create.subarray(8, 16)]);
    const pt = Buffer.alloc(create.length - 52 - 16);
    expect(aeadOpen(pt, create.subarray(52), create.subarray(0, 52), nonce, c.k0)).toBe(true);
    // AD really is bytes 0..52: with 0..48 it does not open
    expect(aeadOpen(Buffer.alloc(pt.length), create.subarray(52), create.subarray(0, 48), nonce, c.k0)).toBe(
      false,
    );
    const it = new FrameIterator().reset(pt, 0, pt.length);
    expect(it.next()).toBe(true);
    expect(it.type).toBe(FrameType.Hello);
    expect(it.bodyOff).toBe(3);
    expect(pt.readUInt16BE(3)).toBe(a.cert.raw.length); // certLen
    expect(pt.subarray(5, 5 + a.cert.raw.length)).toEqual(a.cert.raw);
    expect(it.bodyLen).toBe(2 + a.cert.raw.length + 32);
    // the flow's connection: CONN_OPEN (host identity, IPv4: 12 + 4 + 4 bytes) then CONN_DATA
    expect(it.next()).toBe(true);
    expect(it.type).toBe(FrameType.ConnOpen);
    expect(it.bodyLen).toBe(20);
    const cid = pt.readUInt32BE(it.bodyOff);
    expect(cid).toBe(1);
    expect(pt[it.bodyOff + 4]).toBe(0); // kind: host
    expect(pt.subarray(it.bodyOff + 12, it.bodyOff + 20)).toEqual(inner.subarray(12, 20)); // src, dst
    expect(it.next()).toBe(true);
    expect(it.type).toBe(FrameType.ConnData);
    expect(pt.readUInt32BE(it.bodyOff)).toBe(cid);
    expect(pt.subarray(it.bodyOff + 4, it.bodyOff + it.bodyLen)).toEqual(inner);
    expect(it.next()).toBe(false);
    expect(it.malformed).toBe(false);
    expect(pt.subarray(it.pos).every((x) => x === 0)).toBe(true); // zero padding
  });

  it("REPLY: T_R at 16..48, AD = bytes 0..48, empty (64 bytes); DATA: AD = header, CONN_DATA frame", () => {
    const { net, a, b } = capture();
    a.send(ipv4("10.77.0.1", "10.77.0.2", "x"));
    net.run(1); // CREATE -> b
    const reply = Buffer.from(net.queue[0]!.data);
    const tb = b.engine.peers.values().next().value!.sendTunnel()!;
    expect(reply[8]).toBe(PacketType.Reply);
    expect(reply.latin1Slice(0, 8)).toBe(tb.tid);
    expect(reply.length).toBe(64);
    expect(reply.subarray(16, 48)).toEqual(tb.accept!.tR);
    const nonce = Buffer.concat([Buffer.alloc(4), reply.subarray(8, 16)]);
    expect(aeadOpen(Buffer.alloc(0), reply.subarray(48), reply.subarray(0, 48), nonce, tb.cur!.sendKey)).toBe(
      true,
    );
    net.run();
    // established, and the connection answered by the peer (so no more CONN_OPEN):
    // a DATA carrying one CONN_DATA frame is 16 + 3 + 4 + inner + 16 bytes
    // (UDP ports from the payload bytes: "data" is port "da" -> "ta", "tada" the answer)
    const inner = ipv4("10.77.0.1", "10.77.0.2", "data");
    a.send(inner);
    net.run();
    b.send(ipv4("10.77.0.2", "10.77.0.1", "tada"));
    net.run();
    net.log.length = 0;
    a.send(inner);
    const data = Buffer.from(net.queue[0]!.data);
    const ta = a.engine.peers.values().next().value!.sendTunnel()!;
    expect(data[8]).toBe(PacketType.Data);
    expect(data.length).toBe(16 + 3 + 4 + inner.length + 16);
    expect(data.latin1Slice(0, 8)).toBe(ta.cur!.tid);
    const n2 = Buffer.concat([Buffer.alloc(4), data.subarray(8, 16)]);
    const pt = Buffer.alloc(data.length - 32);
    expect(aeadOpen(pt, data.subarray(16), data.subarray(0, 16), n2, ta.cur!.sendKey)).toBe(true);
    expect(pt.subarray(0, 3).toString("hex")).toBe("04" + (4 + inner.length).toString(16).padStart(4, "0"));
    expect(pt.readUInt32BE(3)).toBe(2); // connection id 2 ("x" was 1), bit 31 clear: opened by the sender
    expect(pt.subarray(7)).toEqual(inner);
    expect(ipVersion(pt, 7, inner.length)).toBe(4);
  });
});
