/**
 * DNS answers for overlay names: `web.mesh.` -> A / AAAA of host `web`'s overlay
 * addresses (from a verified host certificate, see names.ts). The wire format is
 * dns-packet's (encode/decode); this file only decides what to answer.
 *
 *   query for NAME.DOMAIN, host known          NOERROR, AA, the A/AAAA it has (NODATA otherwise)
 *   query for NAME.DOMAIN, no such host        NXDOMAIN (SOA in authority: negative TTL)
 *   query for NAME.DOMAIN, directory silent    SERVFAIL
 *   query for DOMAIN itself                    NOERROR, SOA for type SOA, else NODATA
 *   PTR for an overlay address with an owner   NOERROR, NAME.DOMAIN (in-addr.arpa / ip6.arpa)
 *   PTR for an overlay address without one     NXDOMAIN (SERVFAIL: directory silent)
 *   PTR outside the overlay                    REFUSED
 *   query outside DOMAIN                       REFUSED (nothing is forwarded)
 *   opcode other than QUERY                    NOTIMP
 *   not exactly one question, class not IN     FORMERR / REFUSED
 *   undecodable, a response, shorter than 12   no answer; counted in `malformed`
 *   section counts that cannot fit the message no answer; counted in `malformed` (not decoded)
 *
 * TTLs are the record's remaining life, capped at MAX_TTL_SEC, so a changed
 * host is seen within a minute.
 */
import * as dnsPacket from "dns-packet";
import type { Answer, Packet, Question } from "dns-packet";
import { NEGATIVE_TTL_MS, type NameAnswer } from "./names.js";
import { parseIp } from "../ip/ip.js";

export const MAX_TTL_SEC = 60;
/** a DNS header is 12 bytes; a query larger than this is not one we send answers for */
export const HEADER_BYTES = 12;
export const MAX_QUERY_BYTES = 4096;
/** EDNS payload size we announce (the usual safe value, no fragmentation) */
export const EDNS_UDP_SIZE = 1232;
/** the smallest question: the root name (1 byte), type and class */
export const MIN_QUESTION_BYTES = 5;
/** the smallest resource record: the root name, type, class, TTL and RDLENGTH */
export const MIN_RR_BYTES = 11;

/**
 * Whether the four section counts of the header could fit in the message. The
 * decoder (dns-packet) allocates an array of each count before reading anything
 * (4 x 65535 slots for a 12-byte datagram of 0xff: about 4 ms of allocation and
 * GC on the daemon's event loop, so a few hundred such datagrams a second stall
 * the DNS server and the data path with it); a count that cannot fit is
 * malformed and never decoded.
 */
export function countsFit(msg: Buffer): boolean {
  const rrs = msg.readUInt16BE(6) + msg.readUInt16BE(8) + msg.readUInt16BE(10);
  return HEADER_BYTES + msg.readUInt16BE(4) * MIN_QUESTION_BYTES + rrs * MIN_RR_BYTES <= msg.length;
}

const FLAG_QR = 0x8000;
const OPCODE_SHIFT = 11;
const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;
type Rcode = keyof typeof RCODE;

export interface DnsCounters {
  queries: number;
  noerror: number;
  nxdomain: number;
  servfail: number;
  refused: number;
  notimp: number;
  formerr: number;
  /** dropped without an answer: undecodable, a response, too short or too long */
  malformed: number;
}

export const newDnsCounters = (): DnsCounters => ({
  queries: 0,
  noerror: 0,
  nxdomain: 0,
  servfail: 0,
  refused: 0,
  notimp: 0,
  formerr: 0,
  malformed: 0,
});

/** "mesh", "Mesh.", "corp.example." -> "mesh." / "corp.example."; null if not a domain name. */
export function normalizeDomain(s: string): string | null {
  const d = s.toLowerCase().replace(/\.$/, "");
  if (d.length === 0 || d.length > 200) return null;
  for (const l of d.split(".")) if (!/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(l)) return null;
  return d + ".";
}

export interface DnsContext {
  /** normalized, with the trailing dot (normalizeDomain) */
  domain: string;
  resolve: (name: string) => Promise<NameAnswer | null>;
  /**
   * Reverse lookups (PTR): the name of the host owning an address; null when the
   * address is in the overlay but no known host owns it (NXDOMAIN); undefined when
   * it is not an overlay address (REFUSED); a rejection is SERVFAIL (the directory
   * did not answer). Absent: every reverse name is REFUSED.
   */
  reverse?: (ip: string) => Promise<string | null | undefined>;
  now: () => number;
  counters: DnsCounters;
}

/** The answer to one DNS message, or null (no answer: the drop is counted). Never throws. */
export async function answerQuery(msg: Buffer, ctx: DnsContext): Promise<Buffer | null> {
  const c = ctx.counters;
  if (
    msg.length < HEADER_BYTES ||
    msg.length > MAX_QUERY_BYTES ||
    (msg.readUInt16BE(2) & FLAG_QR) !== 0 ||
    !countsFit(msg)
  ) {
    c.malformed++;
    return null;
  }
  let q: ReturnType<typeof dnsPacket.decode>;
  try {
    q = dnsPacket.decode(msg);
  } catch {
    c.malformed++;
    return null;
  }
  c.queries++;
  const flags = msg.readUInt16BE(2);
  const opcode = (flags >> OPCODE_SHIFT) & 0xf;
  const edns = (q.additionals ?? []).some((a) => a.type === "OPT");
  const reply = (
    rcode: Rcode,
    answers: Answer[] = [],
    authorities: Answer[] = [],
    questions?: Question[],
  ) => {
    c[rcode.toLowerCase() as Lowercase<Rcode>]++;
    const p: Packet = {
      type: "response",
      id: q.id ?? 0,
      // opcode echoed; AA (we are the authority for the domain); RD copied; no RA (no recursion)
      flags: (opcode << OPCODE_SHIFT) | dnsPacket.AUTHORITATIVE_ANSWER | (flags & 0x0100) | RCODE[rcode],
      questions: questions ?? [],
      answers,
      authorities,
      additionals: edns
        ? [
            {
              type: "OPT",
              name: ".",
              udpPayloadSize: EDNS_UDP_SIZE,
              extendedRcode: 0,
              ednsVersion: 0,
              flags: 0,
              flag_do: false,
              options: [],
            },
          ]
        : [],
    };
    try {
      return dnsPacket.encode(p);
    } catch {
      // a question we decoded but cannot encode back (e.g. an over-long name)
      c.malformed++;
      return null;
    }
  };
  if (opcode !== 0) return reply("NOTIMP");
  const qs = q.questions ?? [];
  if (qs.length !== 1) return reply("FORMERR");
  const question = qs[0]!;
  if (question.class !== "IN" && question.class !== "ANY") return reply("REFUSED", [], [], qs);
  const qname = question.name.toLowerCase().replace(/\.$/, "") + ".";
  const domain = ctx.domain;
  const soa = (): Answer => ({
    type: "SOA",
    name: domain,
    ttl: NEGATIVE_TTL_MS / 1000,
    data: {
      mname: `ns.${domain}`,
      rname: `hostmaster.${domain}`,
      serial: 1,
      refresh: 3600,
      retry: 600,
      expire: 86400,
      minimum: NEGATIVE_TTL_MS / 1000,
    },
  });
  const any = (question.type as string) === "ANY"; // type 255, missing from the typings
  if (qname.endsWith(".in-addr.arpa.") || qname.endsWith(".ip6.arpa.")) {
    const ip = reverseAddress(qname);
    let owner: string | null | undefined;
    try {
      owner = ip && ctx.reverse ? await ctx.reverse(ip) : undefined;
    } catch {
      return reply("SERVFAIL", [], [], qs);
    }
    if (owner === undefined) return reply("REFUSED", [], [], qs);
    if (owner === null) return reply("NXDOMAIN", [], [], qs);
    const ptr: Answer = { type: "PTR", name: question.name, ttl: MAX_TTL_SEC, data: `${owner}.${domain}` };
    return reply("NOERROR", question.type === "PTR" || any ? [ptr] : [], [], qs);
  }
  if (qname === domain) return reply("NOERROR", question.type === "SOA" ? [soa()] : [], [], qs);
  if (!qname.endsWith("." + domain)) return reply("REFUSED", [], [], qs);
  const host = qname.slice(0, -(domain.length + 1));
  let a: NameAnswer | null;
  try {
    a = await ctx.resolve(host);
  } catch {
    // DirectoryUnavailable, or anything else that kept us from knowing: not "no such host"
    return reply("SERVFAIL", [], [], qs);
  }
  if (!a) return reply("NXDOMAIN", [], [soa()], qs);
  const ttl = Math.max(0, Math.min(MAX_TTL_SEC, Math.floor((a.expiresAt - ctx.now()) / 1000)));
  const answers: Answer[] = [];
  if (a.ip4 && (question.type === "A" || any))
    answers.push({ type: "A", name: question.name, ttl, data: a.ip4 });
  if (a.ip6 && (question.type === "AAAA" || any))
    answers.push({ type: "AAAA", name: question.name, ttl, data: a.ip6 });
  return reply("NOERROR", answers, answers.length ? [] : [soa()], qs);
}

/**
 * "4.3.2.1.in-addr.arpa." -> "1.2.3.4"; 32 nibbles + "ip6.arpa." -> the IPv6 address
 * (canonical text); null for anything else (partial names, bad labels).
 */
export function reverseAddress(qname: string): string | null {
  const v4 = qname.endsWith(".in-addr.arpa.");
  const labels = qname.slice(0, -(v4 ? ".in-addr.arpa." : ".ip6.arpa.").length).split(".");
  if (v4) {
    if (labels.length !== 4 || !labels.every((l) => /^(0|[1-9][0-9]{0,2})$/.test(l) && Number(l) < 256))
      return null;
    return parseIp(labels.reverse().join("."))?.text ?? null;
  }
  if (labels.length !== 32 || !labels.every((l) => /^[0-9a-f]$/.test(l))) return null;
  const hex = labels.reverse().join("");
  return parseIp(hex.match(/.{4}/g)!.join(":"))?.text ?? null;
}
