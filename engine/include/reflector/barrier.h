/* SPDX-License-Identifier: MIT */
/*
 * Every ordering primitive the engine uses on memory shared with TypeScript
 * lives here (the liburing barrier.h pattern). TypeScript's Atomics.load and
 * Atomics.store are sequentially consistent, which is at least as strong as
 * the acquire/release pairs below, so a C release store is always paired with
 * a JS Atomics.load and a JS Atomics.store with a C acquire load.
 */
#ifndef REFLECTOR_BARRIER_H
#define REFLECTOR_BARRIER_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Publish a ring index: everything written before it is visible to the peer
 * that reads the index with rf_load_acquire(). */
static inline void rf_store_release(uint32_t *p, uint32_t v)
{
	atomic_store_explicit((_Atomic uint32_t *)p, v, memory_order_release);
}

/* Read a peer's ring index: entries it published before the index are
 * visible after this load. */
static inline uint32_t rf_load_acquire(const uint32_t *p)
{
	return atomic_load_explicit((_Atomic const uint32_t *)p, memory_order_acquire);
}

/* Read an index this side writes itself: no ordering needed. */
static inline uint32_t rf_load_relaxed(const uint32_t *p)
{
	return atomic_load_explicit((_Atomic const uint32_t *)p, memory_order_relaxed);
}

static inline void rf_store_relaxed(uint32_t *p, uint32_t v)
{
	atomic_store_explicit((_Atomic uint32_t *)p, v, memory_order_relaxed);
}

static inline uint32_t rf_fetch_add(uint32_t *p, uint32_t v)
{
	return atomic_fetch_add_explicit((_Atomic uint32_t *)p, v, memory_order_seq_cst);
}

#if defined(__SANITIZE_THREAD__)
#define RF_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define RF_TSAN 1
#endif
#endif

#ifdef RF_TSAN
/* ThreadSanitizer does not model fences (GCC refuses to build them): in its
 * builds every fence is a seq_cst read-modify-write of one word all threads
 * share, a full barrier on the hardware and an order TSan can see. Weak: one
 * word for every translation unit. */
__attribute__((weak)) _Atomic uint32_t rf_tsan_fence_word;
#define RF_FENCE(order) ((void)atomic_fetch_add_explicit(&rf_tsan_fence_word, 0, memory_order_seq_cst))
#else
#define RF_FENCE(order) atomic_thread_fence(order)
#endif

/* Full fence for the sleep/wake handshake (Dekker): the sleeper stores its
 * "sleeping" flag, fences, then re-checks the ring; the waker stores the ring
 * index, fences, then reads the flag. One of the two always sees the other. */
static inline void rf_smp_mb(void)
{
	RF_FENCE(memory_order_seq_cst);
}

/* Plain loads before it are done before any access after it (a sequence
 * lock's reader, before it reads the sequence again). */
static inline void rf_fence_acquire(void)
{
	RF_FENCE(memory_order_acquire);
}

/* Accesses before it are visible before any store after it (a sequence
 * lock's writer, after it made the sequence odd). */
static inline void rf_fence_release(void)
{
	RF_FENCE(memory_order_release);
}

/* Single-writer 64-bit counters read by TypeScript at scrape time. Relaxed is
 * enough: a scrape may see a value a few packets old, never a torn one on
 * x86-64 and aarch64 (aligned 64-bit stores are single-copy atomic). */
static inline void rf_counter_add(uint64_t *c, uint64_t v)
{
	atomic_store_explicit((_Atomic uint64_t *)c,
			      atomic_load_explicit((_Atomic uint64_t *)c, memory_order_relaxed) + v,
			      memory_order_relaxed);
}

/*
 * Copy `n` bytes that a peer may still be writing into private memory, once
 * (READ_ONCE for a whole entry). Without the compiler barrier the compiler
 * may drop the copy and read the shared bytes again at each later use: the
 * engine would check one value and use another.
 */
static inline void rf_snapshot(void *dst, const void *src, size_t n)
{
	memcpy(dst, src, n);
	__asm__ __volatile__("" ::: "memory");
}

#define rf_likely(x)   __builtin_expect(!!(x), 1)
#define rf_unlikely(x) __builtin_expect(!!(x), 0)

#endif
