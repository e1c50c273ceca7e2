/* zipstream.h — the single CSV entry of a Zoho bulk-read ZIP, as a stream.
 *
 * Owns: parsing and validating the ZIP container (end of central directory,
 * ZIP64, the one central and local header), inflating the entry through a
 * fixed-size input buffer, and the zip-bomb guards (size and ratio limits,
 * CRC-32 and size checks against the directory). Memory stays bounded
 * whatever the file size: one 256 KiB input buffer plus zlib's window.
 *
 * The entry name is validated but never used as a path. Only zlib and libc.
 * Internals: docs/internals/bulk-stream.md. */
#ifndef ZCRM_ZIPSTREAM_H
#define ZCRM_ZIPSTREAM_H

#include "compiler.h"
#include "rc.h"

#include <stddef.h>
#include <stdint.h>

#define ZIPSTREAM_ERR_LEN 256
#define ZIPSTREAM_DEFAULT_MAX_UNZIPPED (UINT64_C(4) << 30) /* 4 GiB */
#define ZIPSTREAM_DEFAULT_MAX_RATIO UINT64_C(200)
#define ZIPSTREAM_DEFAULT_RATIO_MIN_OUT (UINT64_C(1) << 20) /* 1 MiB */

/* Zip-bomb guards. A field left 0 takes its default; UINT64_MAX means no
 * limit. A NULL limits pointer means all defaults. */
struct zipstream_limits {
	uint64_t max_unzipped;  /* bytes inflated at most (RC_TOOBIG beyond) */
	uint64_t max_ratio;     /* inflated/compressed at most (RC_TOOBIG) */
	uint64_t ratio_min_out; /* the ratio is judged once this much is out */
};

struct zipstream; /* opaque */

/* opening */

/* Open the ZIP at path and validate it: exactly one entry, stored or
 * deflate, not encrypted, a plain "<name>.csv" file name, consistent sizes
 * and offsets, declared sizes within lim. Data-descriptor entries are fine
 * (the central directory's sizes are used) and so are ZIP64 sizes.
 * Errors: RC_IO (cannot open/read), RC_BADINPUT (not a valid single-CSV
 * ZIP), RC_TOOBIG (declared size or ratio over lim); err says why. On
 * success the caller owns *out and frees it with zipstream_close(). */
enum rc zipstream_open(const char *path, const struct zipstream_limits *lim,
		       struct zipstream **out, char *err,
		       size_t errlen) ZCRM_MUSTCHECK;
/* The same on an open file (e.g. an unlinked temp file or a memfd). The fd
 * is borrowed: zipstream keeps its own duplicate, reads it only with
 * pread, and the caller may close fd at any time after the call. */
enum rc zipstream_open_fd(int fd, const struct zipstream_limits *lim,
			  struct zipstream **out, char *err,
			  size_t errlen) ZCRM_MUSTCHECK;

/* reading */

/* Put the next inflated bytes (at most cap) into buf and their count in
 * *n; *n == 0 with RC_OK means the end, after the CRC-32 and the size were
 * checked against the directory. Errors: RC_TOOBIG (over max_unzipped or
 * max_ratio), RC_BADINPUT (truncated or corrupt data, CRC or size
 * mismatch), RC_IO. An error is sticky: later calls return it again. */
enum rc zipstream_read(struct zipstream *z, void *buf, size_t cap, size_t *n,
		       char *err, size_t errlen) ZCRM_MUSTCHECK;

/* facts (valid from open to close) */

/* The entry's name as stored in the ZIP (validated, borrowed from z). */
const char *zipstream_entry_name(const struct zipstream *z);
uint64_t zipstream_compressed_size(const struct zipstream *z);
uint64_t zipstream_uncompressed_size(const struct zipstream *z);
/* Bytes inflated so far (after an error, including those of the failed
 * call, which were not handed out). */
uint64_t zipstream_bytes_out(const struct zipstream *z);

/* closing */

/* Release everything (inflateEnd, the fd, the buffers). NULL is a no-op. */
void zipstream_close(struct zipstream *z);

#endif
