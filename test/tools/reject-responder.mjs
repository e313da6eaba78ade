#!/usr/bin/env node
/**
 * A TUN device that refuses everything: every packet the kernel routes into it is
 * answered with synthReject (src/ip/reject.ts, from dist/) written back into the
 * same TUN. Run inside a test namespace (test/netns/reject.test.ts); needs `npm run build`.
 *
 *   node reject-responder.mjs TUN_NAME
 *
 * Prints "READY <name>" once the device exists (the caller adds addresses and sets it
 * up), then one line per packet: "ANSWER <len> written <n>", "NULL <len>" (nothing to
 * answer) or "DROP <len>" (answering is off). SIGUSR1 turns answering off and prints
 * "ANSWERING off" (a control: the device stays, packets vanish). Exits on SIGTERM.
 */
import { native } from "../../dist/net/native.js";
import { synthReject } from "../../dist/ip/reject.js";

const addon = native();
const { fd, name } = addon.tunOpen(process.argv[2] ?? "", false);
const SLOT = 65536;
const MAX = 16;
const buf = Buffer.alloc(SLOT * MAX);
const lens = new Uint32Array(MAX);
const res = new Uint32Array(8);
let answering = true;

const poller = new addon.Poller(fd, () => {
  const n = addon.tunRead(fd, buf, SLOT, 0, MAX, lens);
  for (let i = 0; i < n; i++) {
    if (!answering) {
      console.log(`DROP ${lens[i]}`);
      continue;
    }
    const r = synthReject(buf, i * SLOT, lens[i]);
    if (!r) {
      console.log(`NULL ${lens[i]}`);
      continue;
    }
    const w = addon.tunWrite(fd, r, Uint32Array.of(0), Uint32Array.of(r.length), 1, res);
    console.log(`ANSWER ${r.length} written ${w}`);
  }
});
poller.start();
console.log(`READY ${name}`);
process.on("SIGUSR1", () => {
  answering = false;
  console.log("ANSWERING off");
});
process.on("SIGTERM", () => {
  poller.close();
  addon.closeFd(fd);
  process.exit(0);
});
