/*
 * testutil — shared by the CUnit test programs: running the registered
 * suites with a machine-readable count, temporary directories, free ports,
 * and child processes stopped by pid.
 */
#ifndef TL_TESTUTIL_H
#define TL_TESTUTIL_H

#include <stddef.h>
#include <sys/types.h>

/* Runs all registered CUnit suites (basic interface, verbose), appends
 * "<passed> <failed>" (test counts) to $TAILOR_TEST_COUNTS if set, cleans up
 * the registry and returns the process exit code (0 iff no failure). */
int tl_test_run(void);

/* Creates a fresh temporary directory (malloc'd path, caller frees) and
 * removes it recursively. */
char *tl_test_tmpdir(void);
void tl_test_rmdir(const char *path);

/* A TCP port on 127.0.0.1 that was free a moment ago. */
int tl_test_free_port(void);

/* Path of a built binary: $TAILOR_BIN_DIR/name (default daemon/name);
 * static buffer. */
const char *tl_test_bin(const char *name);

/* Path of a repository file relative to the source root (tests run from the
 * root); static buffer. */
const char *tl_test_src(const char *rel);

/* fork+exec argv[0] with argv; stdout to out_path (or inherited if NULL),
 * stderr to err_path (or inherited).  Returns the pid, -1 on failure. */
pid_t tl_test_spawn(char *const argv[], const char *out_path,
                    const char *err_path);
/* Sends sig to pid, waits up to timeout_ms, then SIGKILLs; returns the exit
 * status as from waitpid (or -1). */
int tl_test_stop(pid_t pid, int sig, int timeout_ms);
/* Waits for pid to exit within timeout_ms; returns exit code, or -1 on
 * timeout (the process is left running), -2 if killed by a signal. */
int tl_test_wait(pid_t pid, int timeout_ms);

/* Writes the file at path (replacing it) with text, or with what fmt
 * formats; 0, or -1 (errno) when it cannot be written. */
int tl_test_write_file(const char *path, const char *text);
int tl_test_write_filef(const char *path, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The whole file (malloc'd; "" when it cannot be read). */
char *tl_test_read_all(const char *path);
/* Occurrences of needle in hay. */
int tl_test_count_in(const char *hay, const char *needle);
/* Occurrences of needle in the file at path (a log). */
int tl_test_log_count(const char *path, const char *needle);
/* Waits up to timeout_ms until the file at path holds more than `seen`
 * occurrences of needle: 1, or 0 after printing the file's end. */
int tl_test_wait_log(const char *path, const char *needle, int seen,
                     int timeout_ms);

#endif
