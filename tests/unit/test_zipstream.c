/* test_zipstream.c — the bulk ZIP reader: good archives (stored, deflate,
 * data descriptor, ZIP64, archives made by Info-ZIP and Python), every way
 * an archive is refused, truncation and corruption, and the zip-bomb
 * guards. Most archives are built here with a small ZIP writer on zlib so
 * that each case can lie in exactly one field. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "zipstream.h"

#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#ifndef TEST_DATA
#define TEST_DATA "tests/data"
#endif

#define MB (1024u * 1024u)

/* ---- a growable byte buffer ------------------------------------------- */

struct mbuf {
	unsigned char *p;
	size_t len, cap;
};

static void mb_put(struct mbuf *b, const void *d, size_t n)
{
	if (b->len + n > b->cap) {
		b->cap = (b->len + n) * 2 + 64;
		b->p = xrealloc(b->p, b->cap);
	}
	if (n)
		memcpy(b->p + b->len, d, n);
	b->len += n;
}

static void mb_u16(struct mbuf *b, unsigned v)
{
	unsigned char x[2] = {(unsigned char)v, (unsigned char)(v >> 8)};
	mb_put(b, x, 2);
}

static void mb_u32(struct mbuf *b, uint32_t v)
{
	mb_u16(b, v & 0xffff);
	mb_u16(b, v >> 16);
}

static void mb_u64(struct mbuf *b, uint64_t v)
{
	mb_u32(b, (uint32_t)v);
	mb_u32(b, (uint32_t)(v >> 32));
}

static void mb_free(struct mbuf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

/* ---- a minimal ZIP writer --------------------------------------------- */

struct zent {
	const char *name;
	size_t name_len;        /* 0: strlen(name) */
	const void *data;
	size_t len;
	unsigned method;        /* 8 deflates; anything else is stored as is */
	bool descriptor;        /* bit 3, zero sizes locally, descriptor */
	bool zip64;             /* ZIP64 extras and 0xffffffff markers */
	unsigned flags;         /* extra flag bits (encryption...) */
	uint32_t crc_xor;       /* corrupt the recorded CRC-32 */
	int64_t usize_delta;    /* lie about the uncompressed size */
	size_t ccut;            /* keep only this many compressed bytes */
	size_t flip;            /* flip compressed byte flip-1 (0: none) */
	const char *local_name; /* a different name in the local header */
	const void *cdata;      /* verbatim compressed data (CRC and size */
	size_t clen;            /* still come from data/len) */
};

struct zopts {
	const char *comment;
	bool zip64_eocd;        /* ZIP64 end records even without zip64 */
	const char *trailing;   /* bytes after the end record */
};

static void deflate_raw(const void *in, size_t len, struct mbuf *out)
{
	z_stream zs;
	memset(&zs, 0, sizeof(zs));
	assert_int_equal(deflateInit2(&zs, 6, Z_DEFLATED, -MAX_WBITS, 8,
				      Z_DEFAULT_STRATEGY), Z_OK);
	out->cap = deflateBound(&zs, (uLong)len) + 16;
	out->p = xmalloc(out->cap);
	zs.next_in = (Bytef *)(uintptr_t)in;
	zs.avail_in = (uInt)len;
	zs.next_out = out->p;
	zs.avail_out = (uInt)out->cap;
	assert_int_equal(deflate(&zs, Z_FINISH), Z_STREAM_END);
	out->len = zs.total_out;
	deflateEnd(&zs);
}

static void zip_build(const struct zent *ents, size_t n, const struct zopts *o,
		      struct mbuf *zip)
{
	struct mbuf cd = {0};
	uint64_t *lho = xcalloc(n ? n : 1, sizeof(*lho));
	bool any64 = o && o->zip64_eocd;

	memset(zip, 0, sizeof(*zip));
	for (size_t i = 0; i < n; i++) {
		const struct zent *e = &ents[i];
		size_t nlen = e->name_len ? e->name_len : strlen(e->name);
		const char *lname = e->local_name ? e->local_name : e->name;
		size_t lnlen = e->local_name ? strlen(lname) : nlen;
		struct mbuf data = {0};
		uint32_t crc = (uint32_t)crc32(0, e->data, (uInt)e->len);
		uint64_t usize = (uint64_t)((int64_t)e->len + e->usize_delta);
		unsigned flags = e->flags | (e->descriptor ? 8u : 0u);

		if (e->cdata)
			mb_put(&data, e->cdata, e->clen);
		else if (e->method == 8)
			deflate_raw(e->data, e->len, &data);
		else
			mb_put(&data, e->data, e->len);
		if (e->ccut)
			data.len = e->ccut;
		if (e->flip)
			data.p[e->flip - 1] ^= 0x55;
		crc ^= e->crc_xor;
		any64 |= e->zip64;

		lho[i] = zip->len;
		mb_u32(zip, 0x04034b50);
		mb_u16(zip, e->zip64 ? 45 : 20);
		mb_u16(zip, flags);
		mb_u16(zip, e->method);
		mb_u16(zip, 0);
		mb_u16(zip, 0x21);
		mb_u32(zip, e->descriptor ? 0 : crc);
		if (e->zip64) {
			mb_u32(zip, 0xffffffffu);
			mb_u32(zip, 0xffffffffu);
		} else {
			mb_u32(zip, e->descriptor ? 0 : (uint32_t)data.len);
			mb_u32(zip, e->descriptor ? 0 : (uint32_t)usize);
		}
		mb_u16(zip, (unsigned)lnlen);
		mb_u16(zip, e->zip64 ? 20 : 0);
		mb_put(zip, lname, lnlen);
		if (e->zip64) {
			mb_u16(zip, 1);
			mb_u16(zip, 16);
			mb_u64(zip, e->descriptor ? 0 : usize);
			mb_u64(zip, e->descriptor ? 0 : data.len);
		}
		mb_put(zip, data.p, data.len);
		if (e->descriptor) {
			mb_u32(zip, 0x08074b50);
			mb_u32(zip, crc);
			if (e->zip64) {
				mb_u64(zip, data.len);
				mb_u64(zip, usize);
			} else {
				mb_u32(zip, (uint32_t)data.len);
				mb_u32(zip, (uint32_t)usize);
			}
		}

		mb_u32(&cd, 0x02014b50);
		mb_u16(&cd, 0x031e);
		mb_u16(&cd, e->zip64 ? 45 : 20);
		mb_u16(&cd, flags);
		mb_u16(&cd, e->method);
		mb_u16(&cd, 0);
		mb_u16(&cd, 0x21);
		mb_u32(&cd, crc);
		mb_u32(&cd, e->zip64 ? 0xffffffffu : (uint32_t)data.len);
		mb_u32(&cd, e->zip64 ? 0xffffffffu : (uint32_t)usize);
		mb_u16(&cd, (unsigned)nlen);
		mb_u16(&cd, e->zip64 ? 28 : 0);
		mb_u16(&cd, 0);
		mb_u16(&cd, 0);
		mb_u16(&cd, 0);
		mb_u32(&cd, 0100644u << 16);
		mb_u32(&cd, e->zip64 ? 0xffffffffu : (uint32_t)lho[i]);
		mb_put(&cd, e->name, nlen);
		if (e->zip64) {
			mb_u16(&cd, 1);
			mb_u16(&cd, 24);
			mb_u64(&cd, usize);
			mb_u64(&cd, data.len);
			mb_u64(&cd, lho[i]);
		}
		mb_free(&data);
	}

	uint64_t cd_off = zip->len;
	mb_put(zip, cd.p, cd.len);
	if (any64) {
		uint64_t eocd64 = zip->len;
		mb_u32(zip, 0x06064b50);
		mb_u64(zip, 44);
		mb_u16(zip, 45);
		mb_u16(zip, 45);
		mb_u32(zip, 0);
		mb_u32(zip, 0);
		mb_u64(zip, n);
		mb_u64(zip, n);
		mb_u64(zip, cd.len);
		mb_u64(zip, cd_off);
		mb_u32(zip, 0x07064b50);
		mb_u32(zip, 0);
		mb_u64(zip, eocd64);
		mb_u32(zip, 1);
	}
	size_t clen = o && o->comment ? strlen(o->comment) : 0;
	mb_u32(zip, 0x06054b50);
	mb_u16(zip, 0);
	mb_u16(zip, 0);
	mb_u16(zip, any64 ? 0xffff : (unsigned)n);
	mb_u16(zip, any64 ? 0xffff : (unsigned)n);
	mb_u32(zip, any64 ? 0xffffffffu : (uint32_t)cd.len);
	mb_u32(zip, any64 ? 0xffffffffu : (uint32_t)cd_off);
	mb_u16(zip, (unsigned)clen);
	mb_put(zip, o && o->comment ? o->comment : "", clen);
	if (o && o->trailing)
		mb_put(zip, o->trailing, strlen(o->trailing));
	mb_free(&cd);
	free(lho);
}

/* ---- helpers ---------------------------------------------------------- */

/* Write bytes to a fresh temp file; the caller unlinks path. */
static void tmp_write(const void *d, size_t n, char path[64])
{
	snprintf(path, 64, "/tmp/zcrm-zipstream-XXXXXX");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	const unsigned char *p = d;
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		assert_true(w > 0);
		p += w;
		n -= (size_t)w;
	}
	assert_int_equal(close(fd), 0);
}

static enum rc open_bytes(const void *d, size_t n,
			  const struct zipstream_limits *lim,
			  struct zipstream **z, char *err)
{
	char path[64];
	tmp_write(d, n, path);
	enum rc rc = zipstream_open(path, lim, z, err, ZIPSTREAM_ERR_LEN);
	unlink(path);
	return rc;
}

/* Read everything in chunks of chunk bytes into out; returns the first
 * non-OK rc. */
static enum rc read_all(struct zipstream *z, size_t chunk, struct mbuf *out,
			char *err)
{
	unsigned char *buf = xmalloc(chunk);
	enum rc rc;
	size_t n;

	for (;;) {
		rc = zipstream_read(z, buf, chunk, &n, err, ZIPSTREAM_ERR_LEN);
		if (rc || n == 0)
			break;
		assert_true(n <= chunk);
		if (out)
			mb_put(out, buf, n);
	}
	free(buf);
	return rc;
}

/* Open the archive of one entry e and read it all; returns open's or
 * read's rc and leaves the message in err. */
static enum rc one_entry(const struct zent *e,
			 const struct zipstream_limits *lim, size_t chunk,
			 struct mbuf *out, char *err)
{
	struct mbuf zip;
	struct zipstream *z = NULL;
	enum rc rc;

	zip_build(e, 1, NULL, &zip);
	rc = open_bytes(zip.p, zip.len, lim, &z, err);
	if (rc == RC_OK) {
		rc = read_all(z, chunk, out, err);
		zipstream_close(z);
	} else {
		assert_null(z);
	}
	mb_free(&zip);
	return rc;
}

static const char csv_small[] =
	"id,Last_Name,Email\r\n"
	"1,\"Smith, Jr.\",a@example.com\r\n"
	"2,Durand,\r\n";

/* Deterministic CSV-ish text that compresses like real data. */
static unsigned char *gen_csv(size_t len)
{
	unsigned char *p = xmalloc(len);
	uint64_t x = 88172645463325252ull;
	static const char *words[] = {"Lead", "Acme", "\"quoted, word\"",
				      "Zürich", "東京", "north", "south",
				      "2024-05-01T10:00:00+02:00"};
	size_t o = 0;

	while (o < len) {
		char cell[64];
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		int k = snprintf(cell, sizeof(cell), "%llu,%s,%u%s",
				 (unsigned long long)(x % 100000000000ull),
				 words[x % ARRAY_LEN(words)],
				 (unsigned)(x >> 40) % 1000,
				 (x & 16) ? "\r\n" : ",");
		for (int i = 0; i < k && o < len; i++)
			p[o++] = (unsigned char)cell[i];
	}
	return p;
}

/* ---- good archives ---------------------------------------------------- */

static void test_stored(void **state)
{
	struct zent e = {.name = "123.csv", .data = csv_small,
			 .len = sizeof(csv_small) - 1, .method = 0};
	struct mbuf zip, out = {0};
	struct zipstream *z = NULL;
	char err[ZIPSTREAM_ERR_LEN] = "";

	zip_build(&e, 1, NULL, &zip);
	assert_int_equal(open_bytes(zip.p, zip.len, NULL, &z, err), RC_OK);
	assert_string_equal(zipstream_entry_name(z), "123.csv");
	assert_int_equal(zipstream_uncompressed_size(z), e.len);
	assert_int_equal(zipstream_compressed_size(z), e.len);
	assert_int_equal(read_all(z, 4096, &out, err), RC_OK);
	assert_int_equal(out.len, e.len);
	assert_memory_equal(out.p, csv_small, e.len);
	assert_int_equal(zipstream_bytes_out(z), e.len);
	zipstream_close(z);
	mb_free(&zip);
	mb_free(&out);
}

static void test_deflate(void **state)
{
	struct zent e = {.name = "5725767000003000064.csv", .data = csv_small,
			 .len = sizeof(csv_small) - 1, .method = 8};
	struct mbuf out = {0};
	char err[ZIPSTREAM_ERR_LEN] = "";

	assert_int_equal(one_entry(&e, NULL, 4096, &out, err), RC_OK);
	assert_int_equal(out.len, e.len);
	assert_memory_equal(out.p, csv_small, e.len);
	mb_free(&out);
}

static void test_upper_case_suffix(void **state)
{
	struct zent e = {.name = "JOB.CsV", .data = "id\n", .len = 3,
			 .method = 8};
	char err[ZIPSTREAM_ERR_LEN] = "";

	assert_int_equal(one_entry(&e, NULL, 16, NULL, err), RC_OK);
}

/* Several MB through buffers of awkward sizes, down to one byte. */
static void test_big_small_chunks(void **state)
{
	size_t len = 6 * MB + 12345;
	unsigned char *data = gen_csv(len);
	static const size_t chunks[] = {1, 7, 1000, 4096, 65536, 3 * MB};

	for (size_t m = 0; m < 2; m++) {
		struct zent e = {.name = "big.csv", .data = data, .len = len,
				 .method = m ? 8 : 0};
		struct mbuf zip;
		zip_build(&e, 1, NULL, &zip);
		for (size_t c = 0; c < ARRAY_LEN(chunks); c++) {
			struct zipstream *z = NULL;
			struct mbuf out = {0};
			char err[ZIPSTREAM_ERR_LEN] = "";
			if (chunks[c] == 1 && m == 0)
				continue; /* a million preads: slow, not useful */
			out.cap = len;
			out.p = xmalloc(len);
			assert_int_equal(open_bytes(zip.p, zip.len, NULL, &z,
						    err), RC_OK);
			assert_int_equal(read_all(z, chunks[c], &out, err),
					 RC_OK);
			assert_int_equal(out.len, len);
			assert_true(memcmp(out.p, data, len) == 0);
			assert_int_equal(zipstream_bytes_out(z), len);
			zipstream_close(z);
			mb_free(&out);
		}
		mb_free(&zip);
	}
	free(data);
}

static void test_empty_entry(void **state)
{
	for (unsigned m = 0; m <= 8; m += 8) {
		struct zent e = {.name = "empty.csv", .data = "", .len = 0,
				 .method = m};
		struct mbuf out = {0};
		char err[ZIPSTREAM_ERR_LEN] = "";
		assert_int_equal(one_entry(&e, NULL, 16, &out, err), RC_OK);
		assert_int_equal(out.len, 0);
		mb_free(&out);
	}
}

static void test_data_descriptor(void **state)
{
	for (unsigned m = 0; m <= 8; m += 8) {
		struct zent e = {.name = "dd.csv", .data = csv_small,
				 .len = sizeof(csv_small) - 1, .method = m,
				 .descriptor = true};
		struct mbuf out = {0};
		char err[ZIPSTREAM_ERR_LEN] = "";
		assert_int_equal(one_entry(&e, NULL, 5, &out, err), RC_OK);
		assert_int_equal(out.len, e.len);
		assert_memory_equal(out.p, csv_small, e.len);
		mb_free(&out);
	}
}

static void test_zip64(void **state)
{
	for (int dd = 0; dd < 2; dd++) {
		struct zent e = {.name = "z64.csv", .data = csv_small,
				 .len = sizeof(csv_small) - 1, .method = 8,
				 .zip64 = true, .descriptor = dd};
		struct mbuf zip, out = {0};
		struct zipstream *z = NULL;
		char err[ZIPSTREAM_ERR_LEN] = "";

		zip_build(&e, 1, NULL, &zip);
		assert_int_equal(open_bytes(zip.p, zip.len, NULL, &z, err),
				 RC_OK);
		assert_int_equal(zipstream_uncompressed_size(z), e.len);
		assert_int_equal(read_all(z, 100, &out, err), RC_OK);
		assert_memory_equal(out.p, csv_small, e.len);
		zipstream_close(z);
		mb_free(&zip);
		mb_free(&out);
	}
}

/* A ZIP64 size field over 4 GiB is read as such: with a small limit it is
 * refused for its size, which proves the 64-bit value was used. */
static void test_zip64_huge_declared(void **state)
{
	struct zent e = {.name = "z64.csv", .data = csv_small,
			 .len = sizeof(csv_small) - 1, .method = 8,
			 .zip64 = true, .usize_delta = INT64_C(5) << 30};
	struct zipstream_limits lim = {.max_unzipped = UINT64_MAX,
				       .max_ratio = UINT64_MAX};
	struct mbuf zip;
	struct zipstream *z = NULL;
	char err[ZIPSTREAM_ERR_LEN] = "";

	zip_build(&e, 1, NULL, &zip);
	assert_int_equal(open_bytes(zip.p, zip.len, NULL, &z, err),
			 RC_TOOBIG);
	assert_non_null(strstr(err, "5368709"));
	assert_int_equal(open_bytes(zip.p, zip.len, &lim, &z, err), RC_OK);
	assert_int_equal(zipstream_uncompressed_size(z),
			 (UINT64_C(5) << 30) + e.len);
	assert_int_equal(read_all(z, 4096, NULL, err), RC_BADINPUT);
	assert_non_null(strstr(err, "directory says"));
	zipstream_close(z);
	mb_free(&zip);
}

static void test_comment_and_zip64_eocd(void **state)
{
	struct zent e = {.name = "c.csv", .data = csv_small,
			 .len = sizeof(csv_small) - 1, .method = 8};
	struct zopts o = {.comment = "made by a test PK\x05\x06 fake"};
	struct zopts o64 = {.zip64_eocd = true};
	struct mbuf zip;
	struct zipstream *z = NULL;
	char err[ZIPSTREAM_ERR_LEN] = "";

	zip_build(&e, 1, &o, &zip);
	assert_int_equal(open_bytes(zip.p, zip.len, NULL, &z, err), RC_OK);
	assert_int_equal(read_all(z, 64, NULL, err), RC_OK);
	zipstream_close(z);
	mb_free(&zip);

	zip_build(&e, 1, &o64, &zip);
	assert_int_equal(open_bytes(zip.p, zip.len, NULL, &z, err), RC_OK);
	assert_int_equal(read_all(z, 64, NULL, err), RC_OK);
	zipstream_close(z);
	mb_free(&zip);
}

static void test_open_fd_memfd(void **state)
{
	struct zent e = {.name = "m.csv", .data = csv_small,
			 .len = sizeof(csv_small) - 1, .method = 8};
	struct mbuf zip, out = {0};
	struct zipstream *z = NULL;
	char err[ZIPSTREAM_ERR_LEN] = "";
	int fd = memfd_create("zip", MFD_CLOEXEC);

	assert_true(fd >= 0);
	zip_build(&e, 1, NULL, &zip);
	assert_int_equal(write(fd, zip.p, zip.len), (ssize_t)zip.len);
	assert_int_equal(zipstream_open_fd(fd, NULL, &z, err, sizeof(err)),
			 RC_OK);
	close(fd); /* zipstream keeps its own descriptor */
	assert_int_equal(read_all(z, 3, &out, err), RC_OK);
	assert_memory_equal(out.p, csv_small, e.len);
	zipstream_close(z);
	zipstream_close(NULL);
	mb_free(&zip);
	mb_free(&out);
}

/* After the end, reads keep returning 0; errors keep coming back. */
static void test_end_and_sticky(void **state)
{
	struct zent good = {.name = "a.csv", .data = csv_small,
			    .len = sizeof(csv_small) - 1, .method = 8};
	struct zent bad = good;
	struct mbuf zip;
	struct zipstream *z = NULL;
	char err[ZIPSTREAM_ERR_LEN] = "", err2[ZIPSTREAM_ERR_LEN] = "";
	char buf[16];
	size_t n = 99;

	zip_build(&good, 1, NULL, &zip);
	assert_int_equal(open_bytes(zip.p, zip.len, NULL, &z, err), RC_OK);
	assert_int_equal(zipstream_read(z, buf, 0, &n, err, sizeof(err)),
			 RC_INTERNAL);
	assert_int_equal(read_all(z, sizeof(buf), NULL, err), RC_OK);
	assert_int_equal(zipstream_read(z, buf, sizeof(buf), &n, err,
					sizeof(err)), RC_OK);
	assert_int_equal(n, 0);
	zipstream_close(z);
	mb_free(&zip);

	bad.crc_xor = 1;
	zip_build(&bad, 1, NULL, &zip);
	assert_int_equal(open_bytes(zip.p, zip.len, NULL, &z, err), RC_OK);
	assert_int_equal(read_all(z, sizeof(buf), NULL, err), RC_BADINPUT);
	assert_int_equal(zipstream_read(z, buf, sizeof(buf), &n, err2,
					sizeof(err2)), RC_BADINPUT);
	assert_int_equal(n, 0);
	assert_string_equal(err, err2);
	zipstream_close(z);
	mb_free(&zip);
}

/* Archives written by real tools, committed under tests/data/zip. */
static void test_fixtures(void **state)
{
	static const char *files[] = {"infozip_deflate.zip",
				      "infozip_stored.zip",
				      "infozip_zip64.zip",
				      "python_deflate.zip",
				      "python_streamed.zip",
				      "python_streamed_stored.zip"};
	struct mbuf want = {0};
	FILE *f = fopen(TEST_DATA "/zip/sample.csv", "rb");
	char chunk[4096];
	size_t k;

	assert_non_null(f);
	while ((k = fread(chunk, 1, sizeof(chunk), f)) > 0)
		mb_put(&want, chunk, k);
	fclose(f);
	for (size_t i = 0; i < ARRAY_LEN(files); i++) {
		char path[256];
		struct zipstream *z = NULL;
		struct mbuf out = {0};
		char err[ZIPSTREAM_ERR_LEN] = "";

		snprintf(path, sizeof(path), TEST_DATA "/zip/%s", files[i]);
		if (zipstream_open(path, NULL, &z, err, sizeof(err)) != RC_OK)
			fail_msg("%s: %s", files[i], err);
		assert_string_equal(zipstream_entry_name(z), "sample.csv");
		if (read_all(z, 333, &out, err) != RC_OK)
			fail_msg("%s: %s", files[i], err);
		assert_int_equal(out.len, want.len);
		assert_memory_equal(out.p, want.p, want.len);
		zipstream_close(z);
		mb_free(&out);
	}
	mb_free(&want);
}

/* ---- refused archives ------------------------------------------------- */

static void expect_open(const void *zip, size_t len,
			const struct zipstream_limits *lim, enum rc want,
			const char *msg)
{
	struct zipstream *z = (struct zipstream *)(uintptr_t)1;
	char err[ZIPSTREAM_ERR_LEN] = "";
	enum rc rc = open_bytes(zip, len, lim, &z, err);

	if (rc != want || (msg && !strstr(err, msg)))
		fail_msg("want %s \"%s\", got %s \"%s\"", rc_str(want),
			 msg ? msg : "", rc_str(rc), err);
	assert_null(z);
}

static void expect_entry_open(const struct zent *e, enum rc want,
			      const char *msg)
{
	struct mbuf zip;
	zip_build(e, 1, NULL, &zip);
	expect_open(zip.p, zip.len, NULL, want, msg);
	mb_free(&zip);
}

static void test_entry_count(void **state)
{
	struct zent e[2] = {
		{.name = "a.csv", .data = "id\n", .len = 3, .method = 8},
		{.name = "b.csv", .data = "id\n", .len = 3, .method = 8},
	};
	struct mbuf zip;

	zip_build(e, 2, NULL, &zip);
	expect_open(zip.p, zip.len, NULL, RC_BADINPUT, "zip holds 2 entries");
	mb_free(&zip);
	zip_build(e, 0, NULL, &zip);
	expect_open(zip.p, zip.len, NULL, RC_BADINPUT, "zip holds 0 entries");
	mb_free(&zip);
	zip_build(e, 2, &(struct zopts){.zip64_eocd = true}, &zip);
	expect_open(zip.p, zip.len, NULL, RC_BADINPUT, "zip holds 2 entries");
	mb_free(&zip);
}

static void test_bad_names(void **state)
{
	static const struct {
		const char *name;
		size_t len;
		const char *msg;
	} cases[] = {
		{"../x.csv", 0, "path separator"},
		{"a/b.csv", 0, "path separator"},
		{"/etc/x.csv", 0, "path separator"},
		{"a\\b.csv", 0, "path separator"},
		{"..csv", 0, "\"..\""},
		{"a..b.csv", 0, "\"..\""},
		{"x.csv\0.txt", 10, "NUL byte"},
		{"a\nb.csv", 0, "control character"},
		{"x.txt", 0, "does not end in .csv"},
		{"x.csv.gz", 0, "does not end in .csv"},
		{"x.csvx", 0, "does not end in .csv"},
		{".csv", 0, "does not end in .csv"},
		{"csv", 0, "does not end in .csv"},
		{"", 0, "empty name"},
	};

	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		struct zent e = {.name = cases[i].name, .name_len = cases[i].len,
				 .data = "id\n", .len = 3, .method = 8};
		expect_entry_open(&e, RC_BADINPUT, cases[i].msg);
	}
	char longname[300];
	memset(longname, 'a', sizeof(longname));
	memcpy(longname + sizeof(longname) - 5, ".csv", 5);
	struct zent e = {.name = longname, .data = "id\n", .len = 3,
			 .method = 8};
	expect_entry_open(&e, RC_BADINPUT, "bytes long");
}

static void test_bad_methods_and_flags(void **state)
{
	struct zent e = {.name = "a.csv", .data = "id\n", .len = 3};

	e.method = 12;
	expect_entry_open(&e, RC_BADINPUT, "method 12 (bzip2)");
	e.method = 9;
	expect_entry_open(&e, RC_BADINPUT, "deflate64");
	e.method = 99;
	expect_entry_open(&e, RC_BADINPUT, "encrypted");
	e.method = 8;
	e.flags = 1;
	expect_entry_open(&e, RC_BADINPUT, "encrypted");
	e.flags = 0x40;
	expect_entry_open(&e, RC_BADINPUT, "encrypted");
	e.flags = 0;
	e.local_name = "b.csv";
	expect_entry_open(&e, RC_BADINPUT, "disagree on the entry name");
	e.local_name = NULL;
	e.method = 0;
	e.usize_delta = 1;
	expect_entry_open(&e, RC_BADINPUT, "stored zip entry has");
}

static void test_not_a_zip(void **state)
{
	static const char text[] = "id,Name\n1,x\n2,y\n3,z\n4,w\n";
	char err[ZIPSTREAM_ERR_LEN] = "";
	struct zipstream *z = NULL;

	expect_open("", 0, NULL, RC_BADINPUT, "empty file");
	expect_open("PK", 2, NULL, RC_BADINPUT, "too short");
	expect_open(text, sizeof(text) - 1, NULL, RC_BADINPUT, "not a zip");
	assert_int_equal(zipstream_open("/nonexistent/x.zip", NULL, &z, err,
					sizeof(err)), RC_IO);
	assert_null(z);
	assert_int_equal(zipstream_open("/tmp", NULL, &z, err, sizeof(err)),
			 RC_BADINPUT);
	assert_non_null(strstr(err, "regular file"));
	char fifo[] = "/tmp/zcrm-zipstream-fifo-XXXXXX";
	int tfd = mkstemp(fifo);
	assert_true(tfd >= 0);
	close(tfd);
	unlink(fifo);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	assert_int_equal(zipstream_open(fifo, NULL, &z, err, sizeof(err)),
			 RC_BADINPUT); /* and does not hang */
	unlink(fifo);

	struct zent e = {.name = "a.csv", .data = "id\n", .len = 3,
			 .method = 8};
	struct mbuf zip;
	zip_build(&e, 1, &(struct zopts){.trailing = "junk"}, &zip);
	expect_open(zip.p, zip.len, NULL, RC_BADINPUT, "not a zip");
	mb_free(&zip);
}

/* Cut a good archive at every offset: always a clean error. */
static void test_truncated_file(void **state)
{
	for (int z64 = 0; z64 < 2; z64++) {
		struct zent e = {.name = "t.csv", .data = csv_small,
				 .len = sizeof(csv_small) - 1, .method = 8,
				 .zip64 = z64};
		struct mbuf zip;
		zip_build(&e, 1, NULL, &zip);
		for (size_t cut = 0; cut < zip.len; cut++) {
			struct zipstream *z = NULL;
			char err[ZIPSTREAM_ERR_LEN] = "";
			enum rc rc = open_bytes(zip.p, cut, NULL, &z, err);
			if (rc == RC_OK) {
				rc = read_all(z, 7, NULL, err);
				zipstream_close(z);
			}
			if (rc != RC_BADINPUT)
				fail_msg("cut at %zu: %s", cut, rc_str(rc));
			assert_true(err[0] != '\0');
		}
		mb_free(&zip);
	}
}

/* The directory is intact but the deflate stream stops early. */
static void test_truncated_deflate(void **state)
{
	size_t len = 300000;
	unsigned char *data = gen_csv(len);
	struct mbuf full;

	deflate_raw(data, len, &full);
	for (size_t cut = 1; cut < full.len; cut += full.len / 13 + 1) {
		struct zent e = {.name = "t.csv", .data = data, .len = len,
				 .method = 8, .ccut = cut};
		char err[ZIPSTREAM_ERR_LEN] = "";
		enum rc rc = one_entry(&e, NULL, 4096, NULL, err);
		if (rc != RC_BADINPUT || !strstr(err, "truncated"))
			fail_msg("cut %zu: %s %s", cut, rc_str(rc), err);
	}
	mb_free(&full);
	free(data);
}

/* A deflate stream that ends before the compressed size says. */
static void test_deflate_short_of_csize(void **state)
{
	struct mbuf defl;
	char err[ZIPSTREAM_ERR_LEN] = "";

	deflate_raw("id\n", 3, &defl);
	mb_put(&defl, "JUNK", 4);
	struct zent e = {.name = "a.csv", .data = "id\n", .len = 3,
			 .method = 8, .cdata = defl.p, .clen = defl.len};
	assert_int_equal(one_entry(&e, NULL, 64, NULL, err), RC_BADINPUT);
	assert_non_null(strstr(err, "before the compressed size"));
	mb_free(&defl);
}

static void test_corrupt_deflate(void **state)
{
	size_t len = 200000;
	unsigned char *data = gen_csv(len);
	struct mbuf full;

	deflate_raw(data, len, &full);
	/* Flip bytes all over the stream: never a silent success. */
	for (size_t pos = 1; pos <= full.len; pos += full.len / 29 + 1) {
		struct zent e = {.name = "c.csv", .data = data, .len = len,
				 .method = 8, .flip = pos};
		char err[ZIPSTREAM_ERR_LEN] = "";
		enum rc rc = one_entry(&e, NULL, 8192, NULL, err);
		if (rc != RC_BADINPUT)
			fail_msg("flip at %zu: %s %s", pos, rc_str(rc), err);
	}
	mb_free(&full);
	free(data);

	/* A reserved block type is reported as corrupt data. */
	static const unsigned char bad[] = {0xff, 0xff, 0xff, 0xff};
	struct zent e = {.name = "c.csv", .data = "id\n", .len = 3,
			 .method = 8, .cdata = bad, .clen = sizeof(bad)};
	char err[ZIPSTREAM_ERR_LEN] = "";
	assert_int_equal(one_entry(&e, NULL, 64, NULL, err), RC_BADINPUT);
	assert_non_null(strstr(err, "corrupt deflate data"));
}

static void test_crc_and_size_mismatch(void **state)
{
	for (unsigned m = 0; m <= 8; m += 8) {
		struct zent e = {.name = "a.csv", .data = csv_small,
				 .len = sizeof(csv_small) - 1, .method = m,
				 .crc_xor = 0x80};
		char err[ZIPSTREAM_ERR_LEN] = "";
		assert_int_equal(one_entry(&e, NULL, 10, NULL, err),
				 RC_BADINPUT);
		assert_non_null(strstr(err, "CRC-32 mismatch"));
	}
	struct zent e = {.name = "a.csv", .data = csv_small,
			 .len = sizeof(csv_small) - 1, .method = 8,
			 .usize_delta = -1};
	char err[ZIPSTREAM_ERR_LEN] = "";
	assert_int_equal(one_entry(&e, NULL, 10, NULL, err), RC_BADINPUT);
	assert_non_null(strstr(err, "more than the"));
	e.usize_delta = 1;
	assert_int_equal(one_entry(&e, NULL, 10, NULL, err), RC_BADINPUT);
	assert_non_null(strstr(err, "but the directory says"));
}

/* 50 MB of zeros deflate to about 50 KB. */
static void test_zip_bomb(void **state)
{
	size_t len = 50 * MB;
	unsigned char *zeros = xcalloc(len, 1);
	struct zent e = {.name = "bomb.csv", .data = zeros, .len = len,
			 .method = 8};
	struct zipstream_limits small = {.max_unzipped = 10 * MB};
	struct zipstream_limits ratio = {.max_ratio = 100};
	struct zipstream_limits loose = {.max_unzipped = UINT64_MAX,
					 .max_ratio = UINT64_MAX};
	struct mbuf zip;
	char err[ZIPSTREAM_ERR_LEN] = "";

	zip_build(&e, 1, NULL, &zip);
	free(zeros);
	expect_open(zip.p, zip.len, &small, RC_TOOBIG, "over the limit");
	expect_open(zip.p, zip.len, &ratio, RC_TOOBIG, "zip bomb");
	expect_open(zip.p, zip.len, NULL, RC_TOOBIG, "zip bomb"); /* 200:1 */

	/* With no limits it streams through a small buffer in bounded
	 * memory and checks out. */
	struct zipstream *z = NULL;
	assert_int_equal(open_bytes(zip.p, zip.len, &loose, &z, err), RC_OK);
	assert_int_equal(read_all(z, 65536, NULL, err), RC_OK);
	assert_int_equal(zipstream_bytes_out(z), len);
	zipstream_close(z);
	mb_free(&zip);
}

/* The directory lies (says 1 MB): inflation stops right after 1 MB, on
 * the ratio guard or, with no ratio limit, on the directory's size. */
static void test_zip_bomb_lying_directory(void **state)
{
	size_t len = 50 * MB;
	unsigned char *zeros = xcalloc(len, 1);
	struct zent e = {.name = "bomb.csv", .data = zeros, .len = len,
			 .method = 8, .usize_delta = -(int64_t)(49 * MB)};
	struct zipstream_limits noratio = {.max_ratio = UINT64_MAX};
	struct mbuf zip;
	struct zipstream *z = NULL;
	char err[ZIPSTREAM_ERR_LEN] = "";

	zip_build(&e, 1, NULL, &zip);
	free(zeros);
	assert_int_equal(open_bytes(zip.p, zip.len, NULL, &z, err), RC_OK);
	assert_int_equal(read_all(z, 65536, NULL, err), RC_TOOBIG);
	assert_non_null(strstr(err, "zip bomb"));
	assert_true(zipstream_bytes_out(z) <= MB + 65536);
	zipstream_close(z);

	assert_int_equal(open_bytes(zip.p, zip.len, &noratio, &z, err), RC_OK);
	assert_int_equal(read_all(z, 65536, NULL, err), RC_BADINPUT);
	assert_non_null(strstr(err, "more than the"));
	assert_int_equal(zipstream_bytes_out(z), MB + 1);
	zipstream_close(z);
	mb_free(&zip);
}

/* An honest overall ratio (~20:1) whose start inflates 1000:1: the
 * streaming guard stops it once 1 MiB is out. */
static void test_ratio_while_streaming(void **state)
{
	size_t zlen = 20 * MB, rlen = MB;
	unsigned char *data = xcalloc(zlen + rlen, 1);
	uint64_t x = 1;
	struct zipstream_limits lim = {.max_ratio = 50};
	struct mbuf zip;
	struct zipstream *z = NULL;
	char err[ZIPSTREAM_ERR_LEN] = "";

	for (size_t i = zlen; i < zlen + rlen; i++) {
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		data[i] = (unsigned char)(x >> 56);
	}
	struct zent e = {.name = "r.csv", .data = data, .len = zlen + rlen,
			 .method = 8};
	zip_build(&e, 1, NULL, &zip);
	free(data);
	assert_int_equal(open_bytes(zip.p, zip.len, &lim, &z, err), RC_OK);
	assert_int_equal(read_all(z, 65536, NULL, err), RC_TOOBIG);
	assert_non_null(strstr(err, "ratio"));
	assert_true(zipstream_bytes_out(z) < 2 * MB);
	zipstream_close(z);

	/* Tiny entries are never judged by ratio. */
	unsigned char *zeros = xcalloc(100000, 1);
	struct zent t = {.name = "t.csv", .data = zeros, .len = 100000,
			 .method = 8};
	assert_int_equal(one_entry(&t, &lim, 4096, NULL, err), RC_OK);
	free(zeros);
	mb_free(&zip);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stored),
		cmocka_unit_test(test_deflate),
		cmocka_unit_test(test_upper_case_suffix),
		cmocka_unit_test(test_big_small_chunks),
		cmocka_unit_test(test_empty_entry),
		cmocka_unit_test(test_data_descriptor),
		cmocka_unit_test(test_zip64),
		cmocka_unit_test(test_zip64_huge_declared),
		cmocka_unit_test(test_comment_and_zip64_eocd),
		cmocka_unit_test(test_open_fd_memfd),
		cmocka_unit_test(test_end_and_sticky),
		cmocka_unit_test(test_fixtures),
		cmocka_unit_test(test_entry_count),
		cmocka_unit_test(test_bad_names),
		cmocka_unit_test(test_bad_methods_and_flags),
		cmocka_unit_test(test_not_a_zip),
		cmocka_unit_test(test_truncated_file),
		cmocka_unit_test(test_truncated_deflate),
		cmocka_unit_test(test_deflate_short_of_csize),
		cmocka_unit_test(test_corrupt_deflate),
		cmocka_unit_test(test_crc_and_size_mismatch),
		cmocka_unit_test(test_zip_bomb),
		cmocka_unit_test(test_zip_bomb_lying_directory),
		cmocka_unit_test(test_ratio_while_streaming),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
