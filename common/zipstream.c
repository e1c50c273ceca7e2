/* zipstream.c — stream the one CSV entry of a bulk-read ZIP (see zipstream.h).
 *
 * Everything about the container is read from the central directory; the
 * local header is only used to find where the data starts (and must agree
 * on name and method). Offsets and sizes are uint64_t and every sum is
 * checked against the file size before it is used. */
#include "zipstream.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define ZS_INBUF_SIZE (256u * 1024u)  /* compressed bytes read at a time */
#define ZS_MAX_READ (1u << 30)        /* most bytes one read hands out */
#define ZS_MAX_NAME 255               /* longest entry name accepted */

#define SIG_LOCAL 0x04034b50u
#define SIG_CENTRAL 0x02014b50u
#define SIG_EOCD 0x06054b50u
#define SIG_EOCD64 0x06064b50u
#define SIG_EOCD64_LOC 0x07064b50u

#define EOCD_LEN 22u
#define EOCD64_LEN 56u
#define EOCD64_LOC_LEN 20u
#define CENTRAL_LEN 46u
#define LOCAL_LEN 30u
#define MAX_COMMENT 65535u

#define FLAG_ENCRYPTED 0x0001u
#define FLAG_DESCRIPTOR 0x0008u
#define FLAG_STRONG_ENC 0x0040u
#define FLAG_MASKED_CD 0x2000u

#define METHOD_STORED 0
#define METHOD_DEFLATE 8
#define METHOD_AES 99

#define EXTRA_ZIP64 0x0001u

struct zipstream {
	int fd;
	uint64_t file_size;
	uint64_t data_off;      /* first byte of the entry's data */
	uint64_t csize;         /* compressed size (central directory) */
	uint64_t usize;         /* uncompressed size (central directory) */
	uint32_t crc_want;      /* CRC-32 from the central directory */
	unsigned method;        /* METHOD_STORED or METHOD_DEFLATE */
	char *name;             /* entry name, validated */
	struct zipstream_limits lim;

	unsigned char *inbuf;   /* ZS_INBUF_SIZE, deflate only */
	uint64_t in_read;       /* compressed bytes read from the file */
	uint64_t out;           /* inflated bytes handed out */
	uint32_t crc;           /* running CRC-32 of what was handed out */
	z_stream zs;
	bool zs_live;           /* inflateInit2 succeeded: inflateEnd owed */
	bool ended;             /* end reached and verified */
	enum rc failed;         /* sticky error of zipstream_read */
	char failmsg[ZIPSTREAM_ERR_LEN];
};

/* ---- small helpers ---------------------------------------------------- */

static enum rc fail(enum rc rc, char *err, size_t errlen, const char *fmt, ...)
	ZCRM_PRINTF(4, 5);

static enum rc fail(enum rc rc, char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return rc;
}

static uint16_t le16(const unsigned char *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static uint64_t le64(const unsigned char *p)
{
	return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

/* A printable, shortened copy of an untrusted name for messages. */
static void name_show(char *dst, size_t dstlen, const unsigned char *s,
		      size_t n)
{
	size_t o = 0;

	for (size_t i = 0; i < n && o + 8 < dstlen; i++) {
		if (o >= 60) {
			o += (size_t)snprintf(dst + o, dstlen - o, "...");
			break;
		}
		if (s[i] < 0x20 || s[i] == 0x7f || s[i] == '"' || s[i] == '\\')
			o += (size_t)snprintf(dst + o, dstlen - o, "\\x%02x",
					      s[i]);
		else
			dst[o++] = (char)s[i];
	}
	dst[o < dstlen ? o : dstlen - 1] = '\0';
}

/* Read exactly len bytes at off. A short read means the file changed or
 * lied about its size: RC_BADINPUT. */
static enum rc read_at(int fd, uint64_t off, void *buf, size_t len,
		       char *err, size_t errlen)
{
	unsigned char *p = buf;

	while (len > 0) {
		ssize_t r = pread(fd, p, len, (off_t)off);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return fail(RC_IO, err, errlen, "reading zip: %s",
				    strerror(errno));
		}
		if (r == 0)
			return fail(RC_BADINPUT, err, errlen,
				    "zip file ends early (truncated)");
		p += r;
		off += (uint64_t)r;
		len -= (size_t)r;
	}
	return RC_OK;
}

static const char *method_name(unsigned m)
{
	switch (m) {
	case 1: return "shrink";
	case 6: return "implode";
	case 9: return "deflate64";
	case 12: return "bzip2";
	case 14: return "lzma";
	case 93: return "zstd";
	case 95: return "xz";
	default: return "unknown";
	}
}

/* ---- end of central directory ----------------------------------------- */

struct zs_eocd {
	uint64_t nentries;
	uint64_t cd_off;
	uint64_t cd_size;
	uint64_t cd_limit;      /* where the central directory must end */
};

/* The ZIP64 end record via its locator just before the classic record. */
static enum rc eocd64_read(int fd, uint64_t eocd_off, struct zs_eocd *e,
			   char *err, size_t errlen)
{
	unsigned char loc[EOCD64_LOC_LEN], rec[EOCD64_LEN];
	uint64_t off;
	enum rc rc;

	if (eocd_off < EOCD64_LOC_LEN)
		return fail(RC_BADINPUT, err, errlen,
			    "ZIP64 end of central directory locator missing");
	rc = read_at(fd, eocd_off - EOCD64_LOC_LEN, loc, sizeof(loc), err,
		     errlen);
	if (rc)
		return rc;
	if (le32(loc) != SIG_EOCD64_LOC)
		return fail(RC_BADINPUT, err, errlen,
			    "ZIP64 end of central directory locator missing");
	if (le32(loc + 4) != 0 || le32(loc + 16) > 1)
		return fail(RC_BADINPUT, err, errlen,
			    "multi-disk (split) zip not supported");
	off = le64(loc + 8);
	if (off > eocd_off - EOCD64_LOC_LEN ||
	    eocd_off - EOCD64_LOC_LEN - off < EOCD64_LEN)
		return fail(RC_BADINPUT, err, errlen,
			    "ZIP64 end of central directory offset out of range");
	rc = read_at(fd, off, rec, sizeof(rec), err, errlen);
	if (rc)
		return rc;
	if (le32(rec) != SIG_EOCD64)
		return fail(RC_BADINPUT, err, errlen,
			    "ZIP64 end of central directory record missing");
	if (le32(rec + 16) != 0 || le32(rec + 20) != 0)
		return fail(RC_BADINPUT, err, errlen,
			    "multi-disk (split) zip not supported");
	if (le64(rec + 24) != le64(rec + 32))
		return fail(RC_BADINPUT, err, errlen,
			    "multi-disk (split) zip not supported");
	e->nentries = le64(rec + 32);
	e->cd_size = le64(rec + 40);
	e->cd_off = le64(rec + 48);
	e->cd_limit = off;
	return RC_OK;
}

/* Find the end record: the last signature whose comment reaches exactly
 * to the end of the file (no trailing bytes accepted). */
static enum rc eocd_find(int fd, uint64_t size, struct zs_eocd *e, char *err,
			 size_t errlen)
{
	size_t tail_len = size < EOCD_LEN + MAX_COMMENT
				  ? (size_t)size
				  : EOCD_LEN + MAX_COMMENT;
	unsigned char *tail = xmalloc(tail_len);
	const unsigned char *p = NULL;
	uint64_t eocd_off;
	bool has_loc;
	enum rc rc;

	rc = read_at(fd, size - tail_len, tail, tail_len, err, errlen);
	if (rc)
		goto out;
	for (size_t i = tail_len - EOCD_LEN + 1; i-- > 0;) {
		if (le32(tail + i) == SIG_EOCD &&
		    le16(tail + i + 20) == tail_len - i - EOCD_LEN) {
			p = tail + i;
			break;
		}
	}
	if (!p) {
		rc = fail(RC_BADINPUT, err, errlen,
			  "not a zip file (no end of central directory record "
			  "at the end of the file)");
		goto out;
	}
	eocd_off = size - tail_len + (uint64_t)(p - tail);
	e->nentries = le16(p + 10);
	e->cd_size = le32(p + 12);
	e->cd_off = le32(p + 16);
	e->cd_limit = eocd_off;
	has_loc = (size_t)(p - tail) >= EOCD64_LOC_LEN &&
		  le32(p - EOCD64_LOC_LEN) == SIG_EOCD64_LOC;
	if (has_loc || e->nentries == 0xffff || e->cd_size == 0xffffffffu ||
	    e->cd_off == 0xffffffffu || le16(p + 4) == 0xffff ||
	    le16(p + 6) == 0xffff || le16(p + 8) == 0xffff) {
		rc = eocd64_read(fd, eocd_off, e, err, errlen);
		if (rc)
			goto out;
	} else if (le16(p + 4) != 0 || le16(p + 6) != 0 ||
		   le16(p + 8) != le16(p + 10)) {
		rc = fail(RC_BADINPUT, err, errlen,
			  "multi-disk (split) zip not supported");
		goto out;
	}
	rc = RC_OK;
out:
	free(tail);
	return rc;
}

/* ---- the central and local headers ------------------------------------ */

/* Resolve 0xffffffff sizes/offset from the ZIP64 extra field. */
static enum rc zip64_extra(const unsigned char *x, size_t xlen,
			   uint64_t *usize, uint64_t *csize, uint64_t *lho,
			   uint32_t *disk, char *err, size_t errlen)
{
	bool need_u = *usize == 0xffffffffu, need_c = *csize == 0xffffffffu;
	bool need_o = *lho == 0xffffffffu, need_d = *disk == 0xffff;

	while (xlen >= 4) {
		unsigned id = le16(x), sz = le16(x + 2);
		const unsigned char *d = x + 4;

		if (sz > xlen - 4)
			return fail(RC_BADINPUT, err, errlen,
				    "malformed extra field in central directory");
		if (id == EXTRA_ZIP64) {
			size_t need = (need_u + need_c + need_o) * 8u +
				      need_d * 4u;
			if (sz < need)
				return fail(RC_BADINPUT, err, errlen,
					    "ZIP64 extra field too short");
			if (need_u) {
				*usize = le64(d);
				d += 8;
				need_u = false;
			}
			if (need_c) {
				*csize = le64(d);
				d += 8;
				need_c = false;
			}
			if (need_o) {
				*lho = le64(d);
				d += 8;
				need_o = false;
			}
			if (need_d) {
				*disk = le32(d);
				need_d = false;
			}
		}
		x += 4 + sz;
		xlen -= 4 + sz;
	}
	if (need_u || need_c || need_o || need_d)
		return fail(RC_BADINPUT, err, errlen,
			    "size or offset is 0xffffffff but there is no "
			    "ZIP64 extra field");
	return RC_OK;
}

/* The name is only ever shown, never used as a path; still, anything that
 * looks like a path or is not a plain "<x>.csv" is refused. */
static enum rc name_check(const unsigned char *s, size_t n, char *err,
			  size_t errlen)
{
	char show[96];

	if (n == 0)
		return fail(RC_BADINPUT, err, errlen, "zip entry has an empty name");
	if (n > ZS_MAX_NAME)
		return fail(RC_BADINPUT, err, errlen,
			    "zip entry name is %zu bytes long (at most %d)", n,
			    ZS_MAX_NAME);
	name_show(show, sizeof(show), s, n);
	if (memchr(s, '\0', n))
		return fail(RC_BADINPUT, err, errlen,
			    "zip entry name \"%s\" contains a NUL byte", show);
	if (memchr(s, '/', n) || memchr(s, '\\', n))
		return fail(RC_BADINPUT, err, errlen,
			    "zip entry name \"%s\" contains a path separator",
			    show);
	for (size_t i = 0; i + 1 < n; i++) {
		if (s[i] == '.' && s[i + 1] == '.')
			return fail(RC_BADINPUT, err, errlen,
				    "zip entry name \"%s\" contains \"..\"",
				    show);
	}
	for (size_t i = 0; i < n; i++) {
		if (s[i] < 0x20 || s[i] == 0x7f)
			return fail(RC_BADINPUT, err, errlen,
				    "zip entry name \"%s\" contains a control "
				    "character", show);
	}
	if (n <= 4 || s[n - 4] != '.' || (s[n - 3] | 0x20) != 'c' ||
	    (s[n - 2] | 0x20) != 's' || (s[n - 1] | 0x20) != 'v')
		return fail(RC_BADINPUT, err, errlen,
			    "zip entry name \"%s\" does not end in .csv", show);
	return RC_OK;
}

/* Parse the one central header in cd[0..len), fill z's entry facts. */
static enum rc central_parse(struct zipstream *z, const unsigned char *cd,
			     size_t len, uint64_t *lho, char *err,
			     size_t errlen)
{
	unsigned flags, method, nlen, xlen, clen;
	uint32_t disk;
	enum rc rc;

	if (len < CENTRAL_LEN || le32(cd) != SIG_CENTRAL)
		return fail(RC_BADINPUT, err, errlen,
			    "central directory header missing");
	flags = le16(cd + 8);
	method = le16(cd + 10);
	nlen = le16(cd + 28);
	xlen = le16(cd + 30);
	clen = le16(cd + 32);
	if ((size_t)CENTRAL_LEN + nlen + xlen + clen != len)
		return fail(RC_BADINPUT, err, errlen,
			    "central directory size does not match its one "
			    "entry");
	if ((flags & (FLAG_ENCRYPTED | FLAG_STRONG_ENC | FLAG_MASKED_CD)) ||
	    method == METHOD_AES)
		return fail(RC_BADINPUT, err, errlen,
			    "zip entry is encrypted (not supported)");
	if (method != METHOD_STORED && method != METHOD_DEFLATE)
		return fail(RC_BADINPUT, err, errlen,
			    "zip entry uses compression method %u (%s); only "
			    "stored and deflate are supported",
			    method, method_name(method));
	rc = name_check(cd + CENTRAL_LEN, nlen, err, errlen);
	if (rc)
		return rc;

	z->method = method;
	z->crc_want = le32(cd + 16);
	z->csize = le32(cd + 20);
	z->usize = le32(cd + 24);
	disk = le16(cd + 34);
	*lho = le32(cd + 42);
	rc = zip64_extra(cd + CENTRAL_LEN + nlen, xlen, &z->usize, &z->csize,
			 lho, &disk, err, errlen);
	if (rc)
		return rc;
	if (disk != 0)
		return fail(RC_BADINPUT, err, errlen,
			    "multi-disk (split) zip not supported");
	z->name = xstrndup((const char *)cd + CENTRAL_LEN, nlen);
	return RC_OK;
}

/* Check the local header at lho and set z->data_off. */
static enum rc local_check(struct zipstream *z, uint64_t lho, uint64_t cd_off,
			   char *err, size_t errlen)
{
	unsigned char h[LOCAL_LEN + ZS_MAX_NAME];
	size_t nlen = strlen(z->name);
	unsigned lnlen, lxlen;
	enum rc rc;

	if (lho > cd_off || cd_off - lho < LOCAL_LEN + nlen)
		return fail(RC_BADINPUT, err, errlen,
			    "local header offset out of range");
	rc = read_at(z->fd, lho, h, LOCAL_LEN + nlen, err, errlen);
	if (rc)
		return rc;
	if (le32(h) != SIG_LOCAL)
		return fail(RC_BADINPUT, err, errlen, "local header missing");
	lnlen = le16(h + 26);
	lxlen = le16(h + 28);
	if (le16(h + 6) & (FLAG_ENCRYPTED | FLAG_STRONG_ENC))
		return fail(RC_BADINPUT, err, errlen,
			    "zip entry is encrypted (not supported)");
	if (le16(h + 8) != z->method)
		return fail(RC_BADINPUT, err, errlen,
			    "local header and central directory disagree on "
			    "the compression method");
	if (lnlen != nlen || memcmp(h + LOCAL_LEN, z->name, nlen) != 0)
		return fail(RC_BADINPUT, err, errlen,
			    "local header and central directory disagree on "
			    "the entry name");
	z->data_off = lho + LOCAL_LEN + lnlen + lxlen;
	if (z->data_off > cd_off || cd_off - z->data_off < z->csize)
		return fail(RC_BADINPUT, err, errlen,
			    "zip entry data (%llu bytes) runs past the central "
			    "directory (truncated?)",
			    (unsigned long long)z->csize);
	return RC_OK;
}

/* Declared sizes against each other and against the limits. */
static enum rc sizes_check(const struct zipstream *z, char *err,
			   size_t errlen)
{
	const struct zipstream_limits *l = &z->lim;

	if (z->method == METHOD_STORED && z->csize != z->usize)
		return fail(RC_BADINPUT, err, errlen,
			    "stored zip entry has compressed size %llu but "
			    "size %llu",
			    (unsigned long long)z->csize,
			    (unsigned long long)z->usize);
	if (z->usize > l->max_unzipped)
		return fail(RC_TOOBIG, err, errlen,
			    "zip entry inflates to %llu bytes, over the limit "
			    "of %llu",
			    (unsigned long long)z->usize,
			    (unsigned long long)l->max_unzipped);
	if (z->usize >= l->ratio_min_out && z->csize > 0 &&
	    z->usize / z->csize > l->max_ratio)
		return fail(RC_TOOBIG, err, errlen,
			    "zip entry inflation ratio %llu:1 is over the "
			    "limit of %llu:1 (zip bomb?)",
			    (unsigned long long)(z->usize / z->csize),
			    (unsigned long long)l->max_ratio);
	return RC_OK;
}

/* ---- opening ---------------------------------------------------------- */

static void limits_set(struct zipstream_limits *dst,
		       const struct zipstream_limits *src)
{
	dst->max_unzipped = src && src->max_unzipped
				    ? src->max_unzipped
				    : ZIPSTREAM_DEFAULT_MAX_UNZIPPED;
	dst->max_ratio = src && src->max_ratio ? src->max_ratio
					       : ZIPSTREAM_DEFAULT_MAX_RATIO;
	dst->ratio_min_out = src && src->ratio_min_out
				     ? src->ratio_min_out
				     : ZIPSTREAM_DEFAULT_RATIO_MIN_OUT;
}

enum rc zipstream_open_fd(int fd, const struct zipstream_limits *lim,
			  struct zipstream **out, char *err, size_t errlen)
{
	struct zipstream *z = xcalloc(1, sizeof(*z));
	unsigned char *cd = NULL;
	struct zs_eocd e = {0};
	struct stat st;
	uint64_t lho = 0;
	enum rc rc;

	*out = NULL;
	z->fd = -1;
	limits_set(&z->lim, lim);
	z->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (z->fd < 0) {
		rc = fail(RC_IO, err, errlen, "zip fd: %s", strerror(errno));
		goto out;
	}
	if (fstat(z->fd, &st) != 0) {
		rc = fail(RC_IO, err, errlen, "zip: %s", strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = fail(RC_BADINPUT, err, errlen, "zip is not a regular file");
		goto out;
	}
	z->file_size = (uint64_t)st.st_size;
	if (z->file_size == 0) {
		rc = fail(RC_BADINPUT, err, errlen, "empty file, not a zip");
		goto out;
	}
	if (z->file_size < EOCD_LEN) {
		rc = fail(RC_BADINPUT, err, errlen,
			  "file too short to be a zip (%llu bytes)",
			  (unsigned long long)z->file_size);
		goto out;
	}

	rc = eocd_find(z->fd, z->file_size, &e, err, errlen);
	if (rc)
		goto out;
	if (e.nentries != 1) {
		rc = fail(RC_BADINPUT, err, errlen,
			  "zip holds %llu entries (expected exactly one .csv)",
			  (unsigned long long)e.nentries);
		goto out;
	}
	if (e.cd_off > e.cd_limit || e.cd_limit - e.cd_off != e.cd_size) {
		rc = fail(RC_BADINPUT, err, errlen,
			  "central directory offset or size out of range");
		goto out;
	}
	if (e.cd_size < CENTRAL_LEN ||
	    e.cd_size > CENTRAL_LEN + 3u * 65535u) {
		rc = fail(RC_BADINPUT, err, errlen,
			  "central directory size %llu does not fit one entry",
			  (unsigned long long)e.cd_size);
		goto out;
	}
	cd = xmalloc((size_t)e.cd_size);
	rc = read_at(z->fd, e.cd_off, cd, (size_t)e.cd_size, err, errlen);
	if (rc)
		goto out;
	rc = central_parse(z, cd, (size_t)e.cd_size, &lho, err, errlen);
	if (rc)
		goto out;
	rc = local_check(z, lho, e.cd_off, err, errlen);
	if (rc)
		goto out;
	rc = sizes_check(z, err, errlen);
	if (rc)
		goto out;

	if (z->method == METHOD_DEFLATE) {
		int zr = inflateInit2(&z->zs, -MAX_WBITS);
		if (zr != Z_OK) {
			rc = fail(zr == Z_MEM_ERROR ? RC_NOMEM : RC_INTERNAL,
				  err, errlen, "inflateInit2 failed (%d)", zr);
			goto out;
		}
		z->zs_live = true;
		z->inbuf = xmalloc(ZS_INBUF_SIZE);
	}
	z->crc = (uint32_t)crc32(0L, Z_NULL, 0);
	*out = z;
	z = NULL;
	rc = RC_OK;
out:
	free(cd);
	zipstream_close(z);
	return rc;
}

enum rc zipstream_open(const char *path, const struct zipstream_limits *lim,
		       struct zipstream **out, char *err, size_t errlen)
{
	enum rc rc;
	int fd;

	*out = NULL;
	/* O_NONBLOCK: a FIFO must not hang open(); fstat then refuses it. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return fail(RC_IO, err, errlen, "cannot open zip: %s",
			    strerror(errno));
	rc = zipstream_open_fd(fd, lim, out, err, errlen);
	close(fd);
	return rc;
}

/* ---- reading ---------------------------------------------------------- */

/* At the end: the directory's size and CRC-32 must match what came out. */
static enum rc finish(struct zipstream *z, char *err, size_t errlen)
{
	if (z->out != z->usize)
		return fail(RC_BADINPUT, err, errlen,
			    "zip entry inflated to %llu bytes but the directory "
			    "says %llu",
			    (unsigned long long)z->out,
			    (unsigned long long)z->usize);
	if (z->crc != z->crc_want)
		return fail(RC_BADINPUT, err, errlen,
			    "zip entry CRC-32 mismatch (data %08x, directory "
			    "%08x)",
			    (unsigned)z->crc, (unsigned)z->crc_want);
	z->ended = true;
	return RC_OK;
}

/* Refill the input buffer once it is drained and data remains. */
static enum rc fill(struct zipstream *z, char *err, size_t errlen)
{
	uint64_t left = z->csize - z->in_read;
	size_t len = left < ZS_INBUF_SIZE ? (size_t)left : ZS_INBUF_SIZE;
	enum rc rc;

	if (z->zs.avail_in > 0 || len == 0)
		return RC_OK;
	rc = read_at(z->fd, z->data_off + z->in_read, z->inbuf, len, err,
		     errlen);
	if (rc)
		return rc;
	z->in_read += len;
	z->zs.next_in = z->inbuf;
	z->zs.avail_in = (uInt)len;
	return RC_OK;
}

/* Inflate into buf until some output, the end, or an error. Sets *got and
 * *end. Asks for at most one byte more than the directory allows, so a
 * lying directory costs no more work than an honest one. */
static enum rc inflate_some(struct zipstream *z, unsigned char *buf,
			    size_t cap, size_t *got, bool *end, char *err,
			    size_t errlen)
{
	uint64_t left = z->usize - z->out; /* out <= usize: checked */
	uint64_t room = left == UINT64_MAX ? left : left + 1;
	uInt want = (uInt)(cap < room ? cap : room);
	enum rc rc;

	*got = 0;
	*end = false;
	z->zs.next_out = buf;
	z->zs.avail_out = want;
	for (;;) {
		int zr;

		rc = fill(z, err, errlen);
		if (rc)
			return rc;
		zr = inflate(&z->zs, Z_NO_FLUSH);
		if (zr == Z_STREAM_END) {
			*end = true;
			break;
		}
		if (zr == Z_OK) {
			if (z->zs.avail_out < want)
				break;
			continue;
		}
		if (zr == Z_BUF_ERROR) {
			if (z->zs.avail_in == 0 && z->in_read == z->csize)
				return fail(RC_BADINPUT, err, errlen,
					    "deflate data ends before the end "
					    "of the stream (truncated)");
			if (z->zs.avail_in == 0)
				continue;
			return fail(RC_INTERNAL, err, errlen,
				    "inflate made no progress");
		}
		if (zr == Z_MEM_ERROR)
			return fail(RC_NOMEM, err, errlen,
				    "inflate: out of memory");
		if (zr == Z_DATA_ERROR || zr == Z_NEED_DICT)
			return fail(RC_BADINPUT, err, errlen,
				    "corrupt deflate data: %s",
				    z->zs.msg ? z->zs.msg : "bad stream");
		return fail(RC_INTERNAL, err, errlen, "inflate returned %d", zr);
	}
	*got = want - z->zs.avail_out;
	if (*end && (z->zs.avail_in != 0 || z->in_read != z->csize))
		return fail(RC_BADINPUT, err, errlen,
			    "deflate stream ends %llu bytes before the "
			    "compressed size the directory gives",
			    (unsigned long long)(z->csize - z->in_read +
						 z->zs.avail_in));
	return RC_OK;
}

static enum rc read_stored(struct zipstream *z, unsigned char *buf,
			   size_t cap, size_t *got, bool *end, char *err,
			   size_t errlen)
{
	uint64_t left = z->csize - z->in_read;
	size_t len = cap < left ? cap : (size_t)left;
	enum rc rc;

	*got = 0;
	*end = len == 0;
	if (len == 0)
		return RC_OK;
	rc = read_at(z->fd, z->data_off + z->in_read, buf, len, err, errlen);
	if (rc)
		return rc;
	z->in_read += len;
	*got = len;
	return RC_OK;
}

/* The guards, on what actually came out (the directory may lie). */
static enum rc limits_check(const struct zipstream *z, char *err,
			    size_t errlen)
{
	const struct zipstream_limits *l = &z->lim;
	uint64_t in = z->in_read - (z->zs_live ? z->zs.avail_in : 0);

	if (z->out > l->max_unzipped)
		return fail(RC_TOOBIG, err, errlen,
			    "inflated data exceeds the limit of %llu bytes",
			    (unsigned long long)l->max_unzipped);
	if (z->out >= l->ratio_min_out && z->out / (in ? in : 1) > l->max_ratio)
		return fail(RC_TOOBIG, err, errlen,
			    "inflation ratio over the limit of %llu:1 after "
			    "%llu bytes (zip bomb?)",
			    (unsigned long long)l->max_ratio,
			    (unsigned long long)z->out);
	if (z->out > z->usize)
		return fail(RC_BADINPUT, err, errlen,
			    "zip entry inflates to more than the %llu bytes "
			    "the directory says",
			    (unsigned long long)z->usize);
	return RC_OK;
}

enum rc zipstream_read(struct zipstream *z, void *buf, size_t cap, size_t *n,
		       char *err, size_t errlen)
{
	size_t got = 0;
	bool end = false;
	enum rc rc;

	*n = 0;
	if (z->failed)
		return fail(z->failed, err, errlen, "%s", z->failmsg);
	if (z->ended)
		return RC_OK;
	if (cap == 0)
		return fail(RC_INTERNAL, err, errlen,
			    "zipstream_read: zero-size buffer");
	if (cap > ZS_MAX_READ)
		cap = ZS_MAX_READ;

	if (z->method == METHOD_STORED)
		rc = read_stored(z, buf, cap, &got, &end, z->failmsg,
				 sizeof(z->failmsg));
	else
		rc = inflate_some(z, buf, cap, &got, &end, z->failmsg,
				  sizeof(z->failmsg));
	if (rc)
		goto out;
	z->out += got;
	z->crc = (uint32_t)crc32(z->crc, buf, (uInt)got);
	rc = limits_check(z, z->failmsg, sizeof(z->failmsg));
	if (rc)
		goto out;
	if (end) {
		rc = finish(z, z->failmsg, sizeof(z->failmsg));
		if (rc)
			goto out;
	}
	*n = got;
out:
	if (rc) {
		/* Every error sticks: the stream position is lost. */
		z->failed = rc;
		if (err && errlen)
			snprintf(err, errlen, "%s", z->failmsg);
	}
	return rc;
}

/* ---- facts and closing ------------------------------------------------ */

const char *zipstream_entry_name(const struct zipstream *z)
{
	return z->name;
}

uint64_t zipstream_compressed_size(const struct zipstream *z)
{
	return z->csize;
}

uint64_t zipstream_uncompressed_size(const struct zipstream *z)
{
	return z->usize;
}

uint64_t zipstream_bytes_out(const struct zipstream *z)
{
	return z->out;
}

void zipstream_close(struct zipstream *z)
{
	if (!z)
		return;
	if (z->zs_live)
		inflateEnd(&z->zs);
	if (z->fd >= 0)
		close(z->fd);
	free(z->inbuf);
	free(z->name);
	free(z);
}
