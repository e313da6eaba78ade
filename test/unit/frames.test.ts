/**
 * Byte layouts of frames (src/wire/frames.ts, docs/PROTOCOL.md section 3)
 * against hand-written hex vectors: an accidental layout change fails here.
 */
import { describe, it, expect } from "vitest";
import { FRAME_HEADER_BYTES } from "../../src/tunnel/constants.js";
import {
  FrameIterator,
  FrameType,
  HELLO_AUTH_BYTES,
  REKEY_BODY_BYTES,
  decodeHello,
  decodeRekey,
  encodeHello,
  encodeRekey,
  writeFrame,
  writeFrameHeader,
} from "../../src/wire/frames.js";

const hex = (s: string) => Buffer.from(s.replace(/[\s|]/g, ""), "hex");

function frames(buf: Buffer, off = 0, len = buf.length) {
  const it = new FrameIterator().reset(buf, off, len);
  const out: [number, string][] = [];
  while (it.next()) out.push([it.type, buf.subarray(it.bodyOff, it.bodyOff + it.bodyLen).toString("hex")]);
  return { frames: out, malformed: it.malformed };
}

describe("frame constants", () => {
  it("type numbers and sizes are the documented ones", () => {
    expect(FrameType).toEqual({
      Padding: 0,
      Ip: 1,
      Hello: 2,
      ConnOpen: 3,
      ConnData: 4,
      ConnDeny: 5,
      ConnReset: 6,
      Probe: 15,
      Retry: 7,
      Cert: 8,
      Keepalive: 16,
      Rekey: 17,
      RekeyAck: 18,
      Close: 19,
      DirRequest: 20,
      DirResponse: 21,
      DirNotice: 22,
    });
    expect(FRAME_HEADER_BYTES).toBe(3);
    expect(HELLO_AUTH_BYTES).toBe(32);
    expect(REKEY_BODY_BYTES).toBe(36);
  });
});

describe("frame encoding vectors", () => {
  it("writeFrameHeader: type (1) | length (u16 BE), returns the body offset", () => {
    const b = Buffer.alloc(8, 0xee);
    expect(writeFrameHeader(b, 2, FrameType.Rekey, 0x0124)).toBe(5);
    expect(b.toString("hex")).toBe("eeee" + "110124" + "eeeeee");
  });

  it("writeFrame: IP frame with a body, KEEPALIVE without, CLOSE with one byte", () => {
    const b = Buffer.alloc(20);
    let o = writeFrame(b, 0, FrameType.Ip, hex("45 00 00 14"));
    expect(o).toBe(7);
    o = writeFrame(b, o, FrameType.Keepalive, null);
    expect(o).toBe(10);
    o = writeFrame(b, o, FrameType.Close, Buffer.from([7]));
    expect(o).toBe(14);
    expect(b).toEqual(hex("010004 45000014 | 100000 | 130001 07 | 000000000000"));
  });

  it("HELLO body: certLen (u16) | certificate | auth (32)", () => {
    const body = encodeHello(Buffer.from("xyz"), Buffer.alloc(32, 0x11));
    expect(body.toString("hex")).toBe("0003" + "78797a" + "11".repeat(32));
    expect(decodeHello(body, 0, body.length)).toEqual({
      cert: Buffer.from("xyz"),
      auth: Buffer.alloc(32, 0x11),
      suite: 1,
    });
    // AES-256-GCM chosen: one suite byte after auth; no byte means ChaCha20-Poly1305
    const aes = encodeHello(Buffer.from("xyz"), Buffer.alloc(32, 0x11), 2);
    expect(aes.toString("hex")).toBe("0003" + "78797a" + "11".repeat(32) + "02");
    expect(decodeHello(aes, 0, aes.length)?.suite).toBe(2);
    // a suite byte of 1 (not canonical) or of an unknown suite is refused
    for (const s of ["01", "00", "03", "ff"])
      expect(decodeHello(Buffer.concat([body, hex(s)]), 0, body.length + 1)).toBeNull();
  });

  it("REKEY / REKEY_ACK body: seq (u32 BE) | X25519 public key (32)", () => {
    const body = encodeRekey(0x01020304, Buffer.alloc(32, 0xaa));
    expect(body.toString("hex")).toBe("01020304" + "aa".repeat(32));
    expect(encodeRekey(0xffffffff, Buffer.alloc(32)).subarray(0, 4).toString("hex")).toBe("ffffffff");
    expect(decodeRekey(hex("80000001" + "bb".repeat(32)), 0, 36)).toEqual({
      seq: 0x80000001,
      pub: Buffer.alloc(32, 0xbb),
    });
  });

  it("decodeHello refuses lengths that do not add up, an empty certificate and short bodies", () => {
    const ok = hex("0002 abcd" + "22".repeat(32));
    expect(decodeHello(ok, 0, ok.length)?.cert.toString("hex")).toBe("abcd");
    expect(decodeHello(hex("0003 abcd" + "22".repeat(32)), 0, 36)).toBeNull(); // certLen too long
    expect(decodeHello(hex("0001 abcd" + "22".repeat(32)), 0, 36)).toBeNull(); // certLen too short
    expect(decodeHello(hex("0000" + "22".repeat(32)), 0, 34)).toBeNull(); // no certificate
    expect(decodeHello(hex("0001 ab" + "22".repeat(31)), 0, 34)).toBeNull(); // auth short
    // at an offset: reads the window only
    const at = Buffer.concat([hex("ffff"), ok, hex("ffff")]);
    expect(decodeHello(at, 2, ok.length)?.auth).toEqual(Buffer.alloc(32, 0x22));
    expect(decodeRekey(hex("00".repeat(35)), 0, 35)).toBeNull();
    expect(decodeRekey(hex("00".repeat(37)), 0, 37)).toBeNull();
  });
});

describe("frame iteration vectors", () => {
  it("walks KEEPALIVE, IP, CLOSE and stops at padding", () => {
    const pt = hex("100000 | 010003 aabbcc | 130001 00 | 00 ffffffff");
    expect(frames(pt)).toEqual({
      frames: [
        [16, ""],
        [1, "aabbcc"],
        [19, "00"],
      ],
      malformed: false,
    });
  });

  it("respects the window it was given", () => {
    const buf = hex("ff | 010001 aa | 010001 bb | ff");
    expect(frames(buf, 1, 8)).toEqual({
      frames: [
        [1, "aa"],
        [1, "bb"],
      ],
      malformed: false,
    });
    // the window ends inside the second frame
    expect(frames(buf, 1, 7)).toEqual({ frames: [[1, "aa"]], malformed: true });
  });

  it.each([
    ["truncated header", "01 00", [], true],
    ["body past the end", "01 0005 aabb", [], true],
    ["second header truncated", "10 0000 | 01", [[16, ""]], true],
    ["length 0xffff", "11 ffff 00", [], true],
    ["empty plaintext", "", [], false],
    ["padding only", "00 0000 0000", [], false],
    ["unknown types are frames too", "7f 0001 01", [[0x7f, "01"]], false],
  ] as const)("%s", (_name, h, want, malformed) => {
    expect(frames(hex(h))).toEqual({ frames: want, malformed });
  });

  it("a single buffer holding a sealed DATA plaintext from writeFrame parses back", () => {
    const b = Buffer.alloc(64);
    let o = writeFrame(b, 0, FrameType.Rekey, encodeRekey(9, Buffer.alloc(32, 3)));
    o = writeFrame(b, o, FrameType.Ip, hex("60000000"));
    expect(o).toBe(3 + 36 + 3 + 4);
    const got = frames(b);
    expect(got.malformed).toBe(false);
    expect(got.frames.map(([t]) => t)).toEqual([17, 1]);
    expect(got.frames[0]![1]).toBe("00000009" + "03".repeat(32));
  });
});
