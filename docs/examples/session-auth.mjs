#!/usr/bin/env node
/**
 * Binding an application's own authentication to the mintun tunnel that carries the
 * connection (docs/IDENTITY.md section 7, tcpcrypt's idea). No dependencies.
 *
 *   MINTUN_EXAMPLE_KEY=secret node session-auth.mjs server PORT
 *   MINTUN_EXAMPLE_KEY=secret node session-auth.mjs client ADDR PORT
 *
 * Both ends look up the tunnel session id of their connection in the local mintund
 * (API method whois, by the peer's address and port; MINTUN_SOCKET, default
 * /run/mintun/mintund.sock) and compute HMAC(key, "mintun-example v1" | session |
 * challenge). A relay in the middle (another overlay host forwarding the connection)
 * sits between two different tunnels, so the two ends see different session ids and the
 * check fails even though the relay passes every byte through.
 *
 * Output (one line each): server "OK <session>" / "FAIL <why>"; client
 * "authenticated <session>" (exit 0) / "refused <why>" (exit 1).
 */
import crypto from "node:crypto";
import net from "node:net";

const SOCKET = process.env.MINTUN_SOCKET ?? "/run/mintun/mintund.sock";
const KEY = process.env.MINTUN_EXAMPLE_KEY ?? "";
const LABEL = "mintun-example v1";

/** "::ffff:10.0.0.1" (a dual-stack server's view of an IPv4 peer) -> "10.0.0.1" */
const plain = (addr) => (addr?.startsWith("::ffff:") ? addr.slice(7) : addr);

/**
 * The mintun tunnel session (8 bytes) of the connection whose remote end is addr:port and,
 * when given, whose local end is local ("ip:port"); rejects when there is none.
 */
export function mintunSession(addr, port, local = null) {
  return new Promise((resolve, reject) => {
    const s = net.createConnection(SOCKET);
    let buf = "";
    s.setEncoding("utf8");
    s.setTimeout(5000, () => s.destroy(new Error("mintund did not answer")));
    s.on("connect", () =>
      s.write(JSON.stringify({ id: 1, method: "whois", params: { address: addr, port } }) + "\n"),
    );
    s.on("data", (c) => {
      buf += c;
      if (!buf.includes("\n")) return;
      s.end();
      const r = JSON.parse(buf);
      if (r.error) return reject(new Error(`${r.error.code}: ${r.error.message}`));
      const conn = (r.result?.conns ?? []).find(
        (x) => x.state === "open" && (local === null || x.local === local),
      );
      if (conn) resolve(Buffer.from(conn.session, "hex"));
      else reject(new Error(`no mintun connection with ${addr}:${port}`));
    });
    s.on("error", reject);
  });
}

const proof = (session, challenge) =>
  crypto.createHmac("sha256", KEY).update(LABEL).update(session).update(challenge).digest();

/** Reads exactly n bytes from a socket. */
function readN(sock, n) {
  return new Promise((resolve, reject) => {
    let got = Buffer.alloc(0);
    const onData = (d) => {
      got = Buffer.concat([got, d]);
      if (got.length < n) return;
      sock.off("data", onData);
      sock.off("error", reject);
      if (got.length > n) sock.unshift(got.subarray(n));
      resolve(got.subarray(0, n));
    };
    sock.on("data", onData);
    sock.once("error", reject);
    sock.once("end", () => reject(new Error("connection closed")));
  });
}

async function serve(sock) {
  let session;
  try {
    session = await mintunSession(plain(sock.remoteAddress), sock.remotePort);
  } catch (e) {
    console.log(`FAIL ${e.message}`);
    sock.end("FAIL\n");
    return;
  }
  const challenge = crypto.randomBytes(16);
  sock.write(challenge);
  const answer = await readN(sock, 32);
  const ok = crypto.timingSafeEqual(answer, proof(session, challenge));
  console.log(
    ok ? `OK ${session.toString("hex")}` : `FAIL proof does not match session ${session.toString("hex")}`,
  );
  sock.end(ok ? "OK\n" : "FAIL\n");
}

async function client(addr, port) {
  const sock = net.connect(port, addr);
  await new Promise((resolve, reject) => sock.once("connect", resolve).once("error", reject));
  const session = await mintunSession(
    plain(sock.remoteAddress),
    sock.remotePort,
    `${sock.localAddress.includes(":") ? `[${sock.localAddress}]` : sock.localAddress}:${sock.localPort}`,
  );
  const challenge = await readN(sock, 16);
  sock.write(proof(session, challenge));
  const verdict = (await readN(sock, 3)).toString();
  sock.destroy();
  if (verdict === "OK\n") {
    console.log(`authenticated ${session.toString("hex")}`);
    return 0;
  }
  console.log(`refused (our session ${session.toString("hex")})`);
  return 1;
}

const [mode, a, b] = process.argv.slice(2);
if (!KEY) {
  console.error("set MINTUN_EXAMPLE_KEY");
  process.exit(2);
}
if (mode === "server" && a) {
  net
    .createServer((s) => serve(s).catch((e) => (console.log(`FAIL ${e.message}`), s.destroy())))
    .listen(Number(a), "::", () => console.log(`listening ${a}`));
} else if (mode === "client" && a && b) {
  client(a, Number(b)).then(
    (code) => process.exit(code),
    (e) => {
      console.log(`refused ${e.message}`);
      process.exit(1);
    },
  );
} else {
  console.error("usage: session-auth.mjs server PORT | client ADDR PORT");
  process.exit(2);
}
