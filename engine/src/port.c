/* SPDX-License-Identifier: MIT */
/* Backend selection (port.h). */
#include "port.h"

const struct rf_port_ops *rf_port_ops_for(enum rf_backend b)
{
	switch (b) {
	case RF_BACKEND_AFPACKET:
		return &rf_port_afpacket;
	case RF_BACKEND_NULL:
		return &rf_port_null;
	case RF_BACKEND_AFXDP:
		return &rf_port_afxdp;
	}
	return NULL;
}
