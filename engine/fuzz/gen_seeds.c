/* SPDX-License-Identifier: MIT */
/* Writes the seed corpus of the relay fuzz targets into argv[1]: valid
 * IPv4/IPv6 datagrams to the fuzz table's relays, with IP options, VLAN
 * tags, extension headers, fragments and odd lengths. */
#include <stdlib.h>

#include "../test/relay_testpkt.h"

static const uint8_t P4[4] = { 198, 18, 0, 1 }, O4[4] = { 198, 18, 1, 2 };
static const uint8_t P6[16] = { 0x20, 0x01, 0x0d, 0xb8, [15] = 1 };
static const uint8_t O6[16] = { 0x20, 0x01, 0x0d, 0xb8, [15] = 2 };

static int seq;

static void put(const char *dir, const uint8_t *f, uint32_t n, uint8_t prefix_byte, int with_prefix)
{
	char path[512];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/seed-%03d", dir, seq++);
	fp = fopen(path, "wb");
	if (!fp)
		exit(1);
	if (with_prefix)
		fputc(prefix_byte, fp);
	fwrite(f, 1, n, fp);
	fclose(fp);
}

int main(int argc, char **argv)
{
	static uint8_t f[4096], g[4096], pay[1400];
	uint32_t n, i;
	int pfx = argc > 2; /* the parse target takes a leading control byte */

	if (argc < 2)
		return 2;
	for (i = 0; i < sizeof(pay); i++)
		pay[i] = (uint8_t)(i * 31 + 7);
	for (i = 0; i < 4; i++) {
		uint16_t plen = (uint16_t)((const uint16_t[]){ 0, 1, 64, 1316 }[i]);

		n = tp_build(f, 4, O4, 4000, P4, 5000, pay, plen, 0);
		put(argv[1], f, n, 0, pfx);
		n = tp_build(f, 6, O6, 4000, P6, 5000, pay, plen, 0);
		put(argv[1], f, n, 0, pfx);
		n = tp_build(f, 4, O4, 4000, P4, 5000, pay, plen, 1);
		put(argv[1], f, n, 0, pfx);
	}
	/* IPv4 with options */
	n = tp_build(f, 4, O4, 4000, P4, 5000, pay, 100, 0);
	memcpy(g, f, 34);
	g[14] = 0x47;
	memset(g + 34, 1, 8);
	memcpy(g + 42, f + 34, n - 34);
	rf_put16(g + 16, (uint16_t)(n - 14 + 8));
	rf_put16(g + 24, 0);
	rf_put16(g + 24, (uint16_t)~rf_csum_fold16(rf_csum_partial_be(g + 14, 28, 0)));
	put(argv[1], g, n + 8, 0, pfx);
	/* VLAN-tagged */
	memcpy(g, f, 12);
	rf_put16(g + 12, 0x8100);
	rf_put16(g + 14, 5);
	memcpy(g + 16, f + 12, n - 12);
	put(argv[1], g, n + 4, 0, pfx);
	/* IPv6 with hop-by-hop and destination options */
	n = tp_build(f, 6, O6, 4000, P6, 5000, pay, 100, 0);
	memcpy(g, f, 54);
	g[20] = 0;
	memset(g + 54, 0, 16);
	g[54] = 60;
	g[62] = 17;
	memcpy(g + 70, f + 54, n - 54);
	rf_put16(g + 18, (uint16_t)(n - 54 + 16));
	put(argv[1], g, n + 16, 0, pfx);
	/* fragment */
	n = tp_build(f, 4, O4, 4000, P4, 5000, pay, 100, 0);
	rf_put16(f + 20, 0x2000);
	rf_put16(f + 24, 0);
	rf_put16(f + 24, (uint16_t)~rf_csum_fold16(rf_csum_partial_be(f + 14, 20, 0)));
	put(argv[1], f, n, 0, pfx);
	/* truncated by the ring */
	n = tp_build(f, 4, O4, 4000, P4, 5000, pay, 100, 0);
	put(argv[1], f, n - 10, 0x85, pfx);
	return 0;
}
