/* fuzz_zipstream.c — libFuzzer entry point for common/zipstream.
 *
 * The input is written to a memfd and opened as a ZIP; whatever opens is
 * read to the end in small chunks. Limits are small so a bomb in the
 * corpus costs milliseconds. Any crash, leak or sanitizer report is a bug;
 * an error return is not. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memfd_create */
#endif
#include "zipstream.h"

#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static unsigned char buf[4093];
	struct zipstream_limits lim = {.max_unzipped = 8u << 20,
				       .max_ratio = 1000,
				       .ratio_min_out = 1u << 16};
	struct zipstream *z = NULL;
	char err[ZIPSTREAM_ERR_LEN];
	size_t off = 0, n;
	int fd;

	fd = memfd_create("fuzz.zip", MFD_CLOEXEC);
	if (fd < 0)
		abort();
	while (off < size) {
		ssize_t w = write(fd, data + off, size - off);
		if (w <= 0)
			abort();
		off += (size_t)w;
	}
	if (zipstream_open_fd(fd, &lim, &z, err, sizeof(err)) == RC_OK) {
		(void)zipstream_entry_name(z);
		while (zipstream_read(z, buf, sizeof(buf), &n, err,
				      sizeof(err)) == RC_OK && n > 0) {
			if (zipstream_bytes_out(z) > lim.max_unzipped)
				abort(); /* the limit must hold */
		}
		if (zipstream_bytes_out(z) > zipstream_uncompressed_size(z) + 1)
			abort(); /* never much past the directory's size */
		zipstream_close(z);
	} else if (z) {
		abort(); /* *out must stay NULL on error */
	}
	close(fd);
	return 0;
}
