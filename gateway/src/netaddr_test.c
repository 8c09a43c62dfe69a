/* netaddr_test.c - addresses, trusted networks and X-Forwarded-For, as
 * tables of cases. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "netaddr.h"

#include "cruddur/check.h"

static gw_addr A(const char *s) {
  gw_addr a;
  memset(&a, 0xee, sizeof a);
  if (gw_addr_parse(s, strlen(s), &a) != 0) fprintf(stderr, "fixture %s does not parse\n", s);
  return a;
}

static int same(gw_addr a, gw_addr b) {
  return memcmp(a.b, b.b, 16) == 0;
}

static void test_parse(void) {
  static const struct {
    const char *s;
    int ok;
  } c[] = {{"192.0.2.7", 1},  {"2001:db8::1", 1}, {"::ffff:192.0.2.7", 1}, {"::1", 1},
           {"", 0},           {"192.0.2", 0},     {"192.0.2.7:80", 0},     {"[::1]", 0},
           {" 192.0.2.7", 0}, {"unknown", 0},     {"1.2.3.256", 0}};
  for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
    gw_addr a;
    CHECK((gw_addr_parse(c[i].s, strlen(c[i].s), &a) == 0) == c[i].ok, "parse %s", c[i].s);
  }
  CHECK(same(A("::ffff:192.0.2.7"), A("192.0.2.7")), "v4-mapped is v4");
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  struct sockaddr_in *in = (struct sockaddr_in *)&ss;
  in->sin_family = AF_INET;
  inet_pton(AF_INET, "10.1.2.3", &in->sin_addr);
  gw_addr a;
  CHECK(gw_addr_from_sockaddr(&ss, &a) == 0 && same(a, A("10.1.2.3")));
  ss.ss_family = AF_UNIX;
  CHECK(gw_addr_from_sockaddr(&ss, &a) == -1);
}

static void test_cidrs(void) {
  gw_cidrs c;
  CHECK(gw_cidrs_parse("10.0.0.0/8, 192.168.1.7 ,2001:db8::/32,::1", &c) == 0 && c.n == 4);
  static const struct {
    const char *a;
    int in;
  } m[] = {{"10.0.0.1", 1},        {"10.255.255.255", 1},
           {"11.0.0.0", 0},        {"192.168.1.7", 1},
           {"192.168.1.8", 0},     {"2001:db8:ffff::9", 1},
           {"2001:db9::", 0},      {"::1", 1},
           {"::ffff:10.9.9.9", 1}, {"::2", 0}};
  for (size_t i = 0; i < sizeof m / sizeof m[0]; i++) {
    gw_addr a = A(m[i].a);
    CHECK(gw_cidrs_has(&c, &a) == m[i].in, "%s in the list", m[i].a);
  }
  static const char *const bad[] = {"10.0.0.0/33", "10.1.0.0/8",  "10.0.0.0/",
                                    "10.0.0.0/x",  "10.0.0.0/8,", ",10.0.0.0/8",
                                    "nope",        "::/129",      "10.0.0.0/8,,::1"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    CHECK(gw_cidrs_parse(bad[i], &c) == -1 && c.n == 0, "refused: %s", bad[i]);
  CHECK(gw_cidrs_parse("", &c) == 0 && c.n == 0);
  CHECK(gw_cidrs_parse("  ", &c) == 0 && c.n == 0);
  CHECK(gw_cidrs_parse(NULL, &c) == 0 && c.n == 0);
  CHECK(gw_cidrs_parse("0.0.0.0/0", &c) == 0 && c.n == 1);
  gw_addr x = A("203.0.113.1"), y = A("2001:db8::1");
  CHECK(gw_cidrs_has(&c, &x) == 1 && gw_cidrs_has(&c, &y) == 0, "/0 of v4 is all of v4");
  char many[2048] = "";
  for (int i = 0; i <= GW_CIDRS_MAX; i++) {
    char one[32];
    snprintf(one, sizeof one, "%s10.0.%d.0/24", i ? "," : "", i);
    strcat(many, one);
  }
  CHECK(gw_cidrs_parse(many, &c) == -1, "more than GW_CIDRS_MAX");
}

static void test_client_addr(void) {
  gw_cidrs t;
  gw_cidrs_parse("10.0.0.0/8", &t);
  static const struct {
    const char *peer, *xff, *want;
  } c[] = {
      {"203.0.113.9", "198.51.100.1", "203.0.113.9"}, /* untrusted peer: header ignored */
      {"10.0.0.5", NULL, "10.0.0.5"},                 /* proxy, no header: the proxy */
      {"10.0.0.5", "198.51.100.1", "198.51.100.1"},
      {"10.0.0.5", "1.1.1.1, 198.51.100.1", "198.51.100.1"},  /* left of it: client's words */
      {"10.0.0.5", "198.51.100.1, 10.0.0.9", "198.51.100.1"}, /* two proxies */
      {"10.0.0.5", "10.0.0.7,10.0.0.9", "10.0.0.7"},          /* all trusted: the leftmost */
      {"10.0.0.5", "garbage, 198.51.100.1", "198.51.100.1"},
      {"10.0.0.5", "198.51.100.1, garbage", "10.0.0.5"}, /* our proxy wrote no such thing */
      {"10.0.0.5", "", "10.0.0.5"},
      {"10.0.0.5", " 2001:db8::7 ", "2001:db8::7"},
      {"10.0.0.5", "198.51.100.1,", "10.0.0.5"},
  };
  for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
    gw_addr peer = A(c[i].peer), got;
    gw_client_addr(&peer, &t, c[i].xff, c[i].xff ? strlen(c[i].xff) : 0, &got);
    CHECK(same(got, A(c[i].want)), "peer %s xff '%s'", c[i].peer, c[i].xff ? c[i].xff : "");
  }
  gw_addr peer = A("10.0.0.5"), got;
  gw_client_addr(&peer, NULL, "198.51.100.1", 12, &got);
  CHECK(same(got, peer), "nothing trusted: the peer");
}

static void test_rate_key(void) {
  uint8_t k1[16], k2[16];
  gw_addr a = A("2001:db8:1:2:aaaa::1"), b = A("2001:db8:1:2:bbbb::2"), c = A("2001:db8:1:3::1");
  gw_addr_rate_key(&a, k1);
  gw_addr_rate_key(&b, k2);
  CHECK(memcmp(k1, k2, 16) == 0, "one /64, one key");
  gw_addr_rate_key(&c, k2);
  CHECK(memcmp(k1, k2, 16) != 0);
  gw_addr v = A("192.0.2.1"), w = A("192.0.2.2");
  gw_addr_rate_key(&v, k1);
  gw_addr_rate_key(&w, k2);
  CHECK(memcmp(k1, k2, 16) != 0, "IPv4 by address");
}

int main(void) {
  test_parse();
  test_cidrs();
  test_client_addr();
  test_rate_key();
  if (failures) {
    fprintf(stderr, "netaddr_test: %d failure(s)\n", failures);
    return 1;
  }
  printf("netaddr_test: ok\n");
  return 0;
}
