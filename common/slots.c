/* slots.c — host-wide cap on calls in flight (see slots.h). */
#include "slots.h"

#include <stdatomic.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SLOT_POLL_MS 10

static int open_slot(const char *dir, long i)
{
	char path[4096];
	int n = snprintf(path, sizeof(path), "%s/slot-%ld", dir, i);
	if (n < 0 || (size_t)n >= sizeof(path))
		return -1;
	return open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
}

int slot_take(const char *dir, long n, atomic_int *stop, bool *stopped)
{
	*stopped = false;
	if (n <= 0 || !dir || !*dir)
		return -1;
	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		return -1;
	/* Start where this process's pid points, so that waiting processes
	 * spread over the slots instead of all trying slot 0 first. */
	long first = (long)getpid() % n;
	for (;;) {
		for (long k = 0; k < n; k++) {
			int fd = open_slot(dir, (first + k) % n);
			if (fd < 0)
				return -1;
			if (flock(fd, LOCK_EX | LOCK_NB) == 0)
				return fd;
			int e = errno;
			close(fd);
			if (e != EWOULDBLOCK)
				return -1;
		}
		if (stop && *stop) {
			*stopped = true;
			return -1;
		}
		struct timespec ts = {0, SLOT_POLL_MS * 1000L * 1000L};
		nanosleep(&ts, NULL);
	}
}

void slot_give(int fd)
{
	if (fd >= 0)
		close(fd);
}
