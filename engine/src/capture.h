/* SPDX-License-Identifier: MIT */
/*
 * The producer side of a capture ring (region.h, rf_capture_ring), shared by
 * the RX thread (a relay's frames, relay_capture.c) and the TX thread (a
 * session's frames, tx.c). Each ring has one producer thread.
 */
#ifndef REFLECTOR_CAPTURE_H
#define REFLECTOR_CAPTURE_H

#include <stdint.h>

#include "reflector/region.h"

/* Copy one frame (`a` then `b`, at most RF_CAPTURE_SNAP bytes) into ring `c`
 * as a record of `kind` and `id`, or drop and count it (c->dropped) when it
 * does not fit. `*prod` is the producer's own copy of its position (never
 * read back from the region). csum_off != 0: the UDP checksum at that offset
 * holds only the header's part (port.h rf_tx_pkt.csum_off): it is completed
 * over the payload in the copy, as the port does on the wire. */
void rf_capture_write(struct rf_capture_ring *c, uint32_t *prod, uint16_t kind, uint32_t id,
		      const uint8_t *a, uint32_t alen, const uint8_t *b, uint32_t blen,
		      uint32_t wire_len, uint16_t csum_off);

#endif
