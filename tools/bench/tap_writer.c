// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* tap_writer: the VM side of a tap, the way QEMU without vhost hands a guest's frames to
 * the host: one write() of an Ethernet frame per packet into the tap's fd. It writes a
 * prebuilt IPv4 TCP SYN N times (source port varying; optionally the source address
 * cycling over --sources consecutive addresses), bounded in count and time, and prints
 * one JSON object: frames written, write errors, elapsed seconds and its own CPU time.
 *
 *   tap_writer --tap NAME --src-mac MAC --dst-mac MAC --src A.B.C.D --dst A.B.C.D
 *              [--dport 25] [--count N] [--max-seconds S] [--sources N]
 *
 * Run it in the network namespace that holds the tap (TUNSETIFF looks the name up there).
 * Exit 0 done, 1 runtime failure, 2 usage error. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define FRAME_LEN (14 + 20 + 20)

struct opts {
	const char *tap;
	uint8_t src_mac[6], dst_mac[6];
	struct in_addr src, dst;
	uint16_t dport;
	uint64_t count;
	double max_seconds;
	uint32_t sources;
};

static void usage(const char *why)
{
	fprintf(stderr, "tap_writer: %s\nusage: tap_writer --tap NAME --src-mac MAC --dst-mac MAC --src ADDR "
			"--dst ADDR [--dport 25] [--count N] [--max-seconds S] [--sources N]\n", why);
	exit(2);
}

static int parse_mac(const char *s, uint8_t *m)
{
	unsigned v[6];
	char extra;

	if (sscanf(s, "%x:%x:%x:%x:%x:%x%c", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &extra) != 6)
		return -1;
	for (int i = 0; i < 6; i++) {
		if (v[i] > 0xff)
			return -1;
		m[i] = (uint8_t)v[i];
	}
	return 0;
}

static void parse(int argc, char **argv, struct opts *o)
{
	int have = 0;

	*o = (struct opts){.dport = 25, .count = 1000000, .max_seconds = 60, .sources = 1};
	for (int i = 1; i < argc; i++) {
		const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!v)
			usage("every option takes a value");
		i++;
		if (!strcmp(k, "--tap")) {
			o->tap = v;
			have |= 1;
		} else if (!strcmp(k, "--src-mac")) {
			if (parse_mac(v, o->src_mac))
				usage("--src-mac: not a MAC address");
			have |= 2;
		} else if (!strcmp(k, "--dst-mac")) {
			if (parse_mac(v, o->dst_mac))
				usage("--dst-mac: not a MAC address");
			have |= 4;
		} else if (!strcmp(k, "--src")) {
			if (inet_pton(AF_INET, v, &o->src) != 1)
				usage("--src: not an IPv4 address");
			have |= 8;
		} else if (!strcmp(k, "--dst")) {
			if (inet_pton(AF_INET, v, &o->dst) != 1)
				usage("--dst: not an IPv4 address");
			have |= 16;
		} else if (!strcmp(k, "--dport")) {
			long p = strtol(v, NULL, 10);
			if (p < 1 || p > 65535)
				usage("--dport: 1..65535");
			o->dport = (uint16_t)p;
		} else if (!strcmp(k, "--count")) {
			o->count = strtoull(v, NULL, 10);
			if (o->count < 1 || o->count > 1000000000ULL)
				usage("--count: 1..1e9");
		} else if (!strcmp(k, "--max-seconds")) {
			o->max_seconds = strtod(v, NULL);
			if (!(o->max_seconds > 0) || o->max_seconds > 3600)
				usage("--max-seconds: 0 < s <= 3600 (every run is bounded)");
		} else if (!strcmp(k, "--sources")) {
			long n = strtol(v, NULL, 10);
			if (n < 1 || n > 65536)
				usage("--sources: 1..65536");
			o->sources = (uint32_t)n;
		} else {
			usage("unknown option");
		}
	}
	if (have != 31)
		usage("--tap, --src-mac, --dst-mac, --src and --dst are required");
}

/* one's-complement sum of 16-bit big-endian words (RFC 1071) */
static uint32_t sum16(const uint8_t *p, size_t n, uint32_t s)
{
	for (size_t i = 0; i + 1 < n; i += 2)
		s += (uint32_t)(p[i] << 8 | p[i + 1]);
	return s;
}

static uint16_t fold(uint32_t s)
{
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)~s;
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

/* Fill in the varying fields (source address and port) and both checksums. */
static void finish(uint8_t *f, uint32_t src_host, uint16_t sport)
{
	uint8_t *ip = f + 14, *tcp = ip + 20, pseudo[12];

	memcpy(ip + 12, &(uint32_t){htonl(src_host)}, 4);
	put16(ip + 10, 0);
	put16(ip + 10, fold(sum16(ip, 20, 0)));
	put16(tcp, sport);
	put16(tcp + 16, 0);
	memcpy(pseudo, ip + 12, 8);
	pseudo[8] = 0;
	pseudo[9] = IPPROTO_TCP;
	put16(pseudo + 10, 20);
	put16(tcp + 16, fold(sum16(tcp, 20, sum16(pseudo, 12, 0))));
}

static void build(uint8_t *f, const struct opts *o)
{
	uint8_t *ip = f + 14, *tcp = ip + 20;

	memset(f, 0, FRAME_LEN);
	memcpy(f, o->dst_mac, 6);
	memcpy(f + 6, o->src_mac, 6);
	put16(f + 12, 0x0800);
	ip[0] = 0x45;
	put16(ip + 2, 40);
	put16(ip + 6, 0x4000); /* DF */
	ip[8] = 64;
	ip[9] = IPPROTO_TCP;
	memcpy(ip + 16, &o->dst, 4);
	put16(tcp + 2, o->dport);
	memcpy(tcp + 4, &(uint32_t){htonl(0x5e0b0001)}, 4); /* sequence number */
	tcp[12] = 5 << 4;
	tcp[13] = 0x02; /* SYN */
	put16(tcp + 14, 64240);
}

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	struct opts o;
	struct ifreq ifr = {0};
	uint8_t frame[FRAME_LEN];
	uint64_t written = 0, errors = 0;
	int last_errno = 0;

	parse(argc, argv, &o);
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "tap_writer: open /dev/net/tun: %s\n", strerror(errno));
		return 1;
	}
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
	snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", o.tap);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		fprintf(stderr, "tap_writer: attach to tap %s: %s\n", o.tap, strerror(errno));
		return 1;
	}
	build(frame, &o);
	const uint32_t src0 = ntohl(o.src.s_addr);
	const double start = now_s(), deadline = start + o.max_seconds;
	while (written + errors < o.count) {
		uint64_t i = written + errors;
		finish(frame, src0 + (uint32_t)(i % o.sources), (uint16_t)(1024 + (i / o.sources) % 64000));
		if (write(fd, frame, FRAME_LEN) == FRAME_LEN) {
			written++;
		} else {
			errors++;
			last_errno = errno;
		}
		if ((i & 1023) == 0 && now_s() > deadline)
			break;
	}
	const double elapsed = now_s() - start;
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	printf("{\"frames_written\": %llu, \"write_errors\": %llu, \"last_error\": \"%s\", \"elapsed_s\": %.6f, "
	       "\"cpu_user_s\": %.6f, \"cpu_sys_s\": %.6f, \"stopped_by_deadline\": %s}\n",
	       (unsigned long long)written, (unsigned long long)errors, errors ? strerror(last_errno) : "", elapsed,
	       (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6,
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6,
	       written + errors < o.count ? "true" : "false");
	close(fd);
	return written ? 0 : 1;
}
