// Which IP addresses an outbound image fetch may reach: public unicast only. Everything else (private, loopback,
// link-local, CGNAT, multicast, reserved, documentation, benchmarking, and IPv6 forms that embed or tunnel to
// such an IPv4 address) is refused. Pure functions, no I/O.
import net from 'node:net';

type V4Range = readonly [base: number, prefix: number, label: string];

const v4 = (a: number, b: number, c: number, d: number) => ((a << 24) | (b << 16) | (c << 8) | d) >>> 0;

/** IANA IPv4 special-purpose registry, minus nothing: none of these is a legitimate image host. */
const BLOCKED_V4: readonly V4Range[] = [
  [v4(0, 0, 0, 0), 8, 'this-network'],
  [v4(10, 0, 0, 0), 8, 'private'],
  [v4(100, 64, 0, 0), 10, 'cgnat'],
  [v4(127, 0, 0, 0), 8, 'loopback'],
  [v4(169, 254, 0, 0), 16, 'link-local'],
  [v4(172, 16, 0, 0), 12, 'private'],
  [v4(192, 0, 0, 0), 24, 'ietf-protocol'],
  [v4(192, 0, 2, 0), 24, 'documentation'],
  [v4(192, 31, 196, 0), 24, 'as112'],
  [v4(192, 52, 193, 0), 24, 'amt'],
  [v4(192, 88, 99, 0), 24, '6to4-relay'],
  [v4(192, 168, 0, 0), 16, 'private'],
  [v4(192, 175, 48, 0), 24, 'as112'],
  [v4(198, 18, 0, 0), 15, 'benchmarking'],
  [v4(198, 51, 100, 0), 24, 'documentation'],
  [v4(203, 0, 113, 0), 24, 'documentation'],
  [v4(224, 0, 0, 0), 4, 'multicast'],
  [v4(240, 0, 0, 0), 4, 'reserved'], // includes 255.255.255.255 broadcast
];

function parseV4(ip: string): number | null {
  const parts = ip.split('.');
  if (parts.length !== 4) return null;
  let n = 0;
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p)) return null;
    const x = Number(p);
    if (x > 255) return null;
    n = n * 256 + x;
  }
  return n >>> 0;
}

function inV4(n: number, base: number, prefix: number): boolean {
  const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  return ((n & mask) >>> 0) === ((base & mask) >>> 0);
}

function v4Reason(n: number): string | null {
  for (const [base, prefix, label] of BLOCKED_V4) if (inV4(n, base, prefix)) return label;
  return null;
}

/** 16 bytes of an IPv6 address (accepts an embedded dotted IPv4 tail), or null. */
function parseV6(ip: string): Uint8Array | null {
  let s = ip.toLowerCase();
  const pct = s.indexOf('%');
  if (pct >= 0) s = s.slice(0, pct); // zone id: the address itself decides
  if (!net.isIPv6(s)) return null;
  const out = new Uint8Array(16);
  const lastColon = s.lastIndexOf(':');
  if (s.includes('.', lastColon)) {
    // a dotted IPv4 tail (::ffff:127.0.0.1) becomes two hex groups
    const n = parseV4(s.slice(lastColon + 1));
    if (n === null) return null;
    s = `${s.slice(0, lastColon + 1)}${(n >>> 16).toString(16)}:${(n & 0xffff).toString(16)}`;
  }
  const dbl = s.indexOf('::');
  const head = dbl >= 0 ? s.slice(0, dbl) : s;
  const rest = dbl >= 0 ? s.slice(dbl + 2) : undefined;
  const h = head ? head.split(':') : [];
  const r = rest ? rest.split(':') : [];
  const groups = rest === undefined ? h : [...h, ...Array<string>(8 - h.length - r.length).fill('0'), ...r];
  if (groups.length !== 8) return null;
  const words = groups.map((g) => parseInt(g, 16));
  words.forEach((w, i) => {
    out[i * 2] = (w >> 8) & 0xff;
    out[i * 2 + 1] = w & 0xff;
  });
  return out;
}

const bytesToV4 = (b: Uint8Array, at: number) => ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;

function v6Reason(b: Uint8Array): string | null {
  const zeroUpTo = (n: number) => b.subarray(0, n).every((x) => x === 0);
  // ::ffff:a.b.c.d (IPv4-mapped) and ::ffff:0:a.b.c.d (SIIT): judge the embedded IPv4 address.
  if (zeroUpTo(10) && b[10] === 0xff && b[11] === 0xff) return v4Reason(bytesToV4(b, 12));
  if (zeroUpTo(8) && b[8] === 0xff && b[9] === 0xff && b[10] === 0 && b[11] === 0) return v4Reason(bytesToV4(b, 12));
  if (zeroUpTo(15) && b[15] === 0) return 'unspecified';
  if (zeroUpTo(15) && b[15] === 1) return 'loopback';
  // NAT64 well-known prefix 64:ff9b::/96 reaches the embedded IPv4 address through a translator.
  if (b[0] === 0x00 && b[1] === 0x64 && b[2] === 0xff && b[3] === 0x9b && b.subarray(4, 12).every((x) => x === 0)) {
    return v4Reason(bytesToV4(b, 12));
  }
  // 6to4 2002:AABB:CCDD::/48 tunnels to AA.BB.CC.DD.
  if (b[0] === 0x20 && b[1] === 0x02) return v4Reason(bytesToV4(b, 2));
  // Only 2000::/3 is global unicast; everything else (::/8 incl. IPv4-compatible, 64:ff9b:1::/48, 100::/64,
  // fc00::/7 ULA, fe80::/10 link-local, fec0::/10 site-local, ff00::/8 multicast) is refused.
  if ((b[0]! & 0xe0) !== 0x20) {
    if ((b[0]! & 0xfe) === 0xfc) return 'unique-local';
    if (b[0] === 0xfe && (b[1]! & 0xc0) === 0x80) return 'link-local';
    if (b[0] === 0xfe && (b[1]! & 0xc0) === 0xc0) return 'site-local';
    if (b[0] === 0xff) return 'multicast';
    return 'reserved';
  }
  // 2001::/23 IETF protocol assignments (Teredo 2001::/32 tunnels, benchmarking 2001:2::/48, ORCHID...).
  if (b[0] === 0x20 && b[1] === 0x01 && (b[2]! & 0xfe) === 0x00) return 'ietf-protocol';
  if (b[0] === 0x20 && b[1] === 0x01 && b[2] === 0x0d && b[3] === 0xb8) return 'documentation';
  if (b[0] === 0x3f && b[1] === 0xff && (b[2]! & 0xf0) === 0x00) return 'documentation';
  return null;
}

/**
 * Why an address must not be fetched (`loopback`, `private`, ...) or null when it is a public unicast address.
 * Anything that is not a parseable IP address is refused as `invalid`.
 */
export function blockedReason(ip: string): string | null {
  const a = parseV4(ip);
  if (a !== null) return v4Reason(a);
  const b = parseV6(ip);
  if (b !== null) return v6Reason(b);
  return 'invalid';
}

export const isPublicAddress = (ip: string): boolean => blockedReason(ip) === null;
