/* netaddr.h - client addresses: trusted proxy networks and X-Forwarded-For.
 *
 * Addresses are kept as 16 bytes (IPv4 as IPv4-mapped IPv6), so one type and
 * one comparison serve both families. The gateway believes an
 * X-Forwarded-For header only when the connection comes from a network listed
 * in GATEWAY_TRUSTED_PROXIES; then the client is the rightmost address of
 * the header that is not itself a trusted proxy (everything left of it was
 * written by the client and can be anything). No allocation; thread-safe.
 */
#ifndef GW_NETADDR_H
#define GW_NETADDR_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define GW_CIDRS_MAX 32 /* networks in GATEWAY_TRUSTED_PROXIES */

typedef struct gw_addr {
  uint8_t b[16]; /* network order; IPv4 as ::ffff:a.b.c.d */
} gw_addr;

typedef struct gw_cidrs {
  size_t n;
  struct {
    gw_addr net;
    unsigned bits; /* prefix length over the 128 bits (IPv4 /n is 96 + n) */
  } e[GW_CIDRS_MAX];
} gw_cidrs;

/* The address of an AF_INET or AF_INET6 peer. Returns 0, or -1 for another
 * family (*out untouched). */
int gw_addr_from_sockaddr(const struct sockaddr_storage *ss, gw_addr *out);

/* Parses exactly `len` bytes holding one address: "192.0.2.7" or
 * "2001:db8::1" (no brackets, no port, no zone). Returns 0, or -1. */
int gw_addr_parse(const char *s, size_t len, gw_addr *out);

/* Parses a comma-separated list of networks ("10.0.0.0/8, 2001:db8::/32,
 * 192.0.2.7"; a bare address is a /32 or /128; blanks around items are
 * ignored; an empty or NULL list gives no networks). Returns 0, or -1 for a
 * malformed item, host bits set past the prefix, or more than GW_CIDRS_MAX
 * items (*out then holds no networks). */
int gw_cidrs_parse(const char *list, gw_cidrs *out);

/* 1 when `a` lies in one of the networks (NULL or empty: 0). */
int gw_cidrs_has(const gw_cidrs *c, const gw_addr *a);

/* The client address of a request that came from `peer` with the
 * X-Forwarded-For value `xff` (`len` bytes; NULL when absent): `peer` unless
 * it is trusted; then, walking the header from the right, the first address
 * that is not trusted. A malformed item stops the walk at the last address
 * known (a trusted proxy then stands for its clients). */
void gw_client_addr(const gw_addr *peer, const gw_cidrs *trusted, const char *xff, size_t len,
                    gw_addr *out);

/* The 16-byte rate-limit key of an address: IPv4 as is, IPv6 by its /64
 * (one customer network is usually a /64, and it holds more addresses than
 * anybody could exhaust). */
void gw_addr_rate_key(const gw_addr *a, uint8_t key[16]);

#endif
