/* SPDX-License-Identifier: MIT */
/* Tiny test helpers: exit 0 pass, 1 fail, 77 skip (liburing style). */
#ifndef REFLECTOR_TESTLIB_H
#define REFLECTOR_TESTLIB_H

#include <stdio.h>
#include <stdlib.h>

#define T_PASS 0
#define T_FAIL 1
#define T_SKIP 77

static int t_failures;

#define CHECK(cond, ...)                                                        \
	do {                                                                    \
		if (!(cond) && t_failures++ < 20) {                             \
			fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__,  \
				__LINE__, #cond);                               \
			fprintf(stderr, __VA_ARGS__);                           \
			fputc('\n', stderr);                                    \
		}                                                               \
	} while (0)

/* Stop the test now (a later step cannot run). */
#define REQUIRE(cond, ...)                                                      \
	do {                                                                    \
		if (!(cond)) {                                                  \
			fprintf(stderr, "%s:%d: REQUIRE(%s) failed: ", __FILE__, \
				__LINE__, #cond);                               \
			fprintf(stderr, __VA_ARGS__);                           \
			fputc('\n', stderr);                                    \
			exit(T_FAIL);                                           \
		}                                           \
	} while (0)

#define SKIP(...)                                                               \
	do {                                                                    \
		printf("skip: ");                                               \
		printf(__VA_ARGS__);                                            \
		printf("\n");                                                   \
		exit(T_SKIP);                                                   \
	} while (0)

/* A line of information in the test's output (not a check). */
#define t_comment(...)                                                          \
	do {                                                                    \
		printf("# ");                                                   \
		printf(__VA_ARGS__);                                            \
		printf("\n");                                                   \
	} while (0)

static inline int t_result(const char *name)
{
	printf("%s: %s\n", name, t_failures ? "FAIL" : "ok");
	return t_failures ? T_FAIL : T_PASS;
}

#endif
