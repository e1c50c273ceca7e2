/* conn.c — the FastCGI connections nginx opens to the webhook, and which
 * worker serves which request.
 *
 * With `fastcgi_keep_conn on` (nginx/zcrm-sync.conf) nginx keeps a
 * connection open between requests. libfcgi's FCGX_Accept_r would then
 * wait for the next request on that connection, pinning a worker to an
 * idle connection while new ones starve in the backlog. So the webhook
 * accepts and polls itself (leader/followers): one epoll set holds the
 * listening socket and every idle connection (EPOLLONESHOT), and an idle
 * worker takes the poll lock and waits on it. New connections are
 * accepted and added to the set; a connection with a request (or EOF)
 * waiting is taken off it and served by the worker that saw it, after it
 * has passed the lock on. A worker only ever reads a connection epoll
 * found readable.
 * When every worker is busy nobody polls: new connections wait in the
 * kernel's backlog and nothing queues in memory.
 *
 * Open connections are bounded by what nginx opens (its idle `keepalive`
 * connections plus one per request in flight) and by RLIMIT_NOFILE. */
#include "compiler.h"
#include "log.h"
#include "webhook.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Connections accepted in one go at most (then the listener waits for its
 * next turn in the ready list, so that a flood of them cannot hold the
 * poller forever). */
#define ACCEPT_BATCH 64

struct conn {
	int fd;
	bool busy;              /* a worker has it; not armed in the epoll set */
	struct conn *prev, *next;
};

struct conns {
	int epfd;
	int listen_fd;
	int wake_fd;            /* eventfd: main tells the poller to stop */
	bool draining;          /* listener and wake_fd are out of the set */
	time_t warned;          /* last accept() warning (one a second) */
	struct app *app;
	pthread_mutex_t poll_lock;  /* held by the one worker in epoll_wait */
	pthread_mutex_t lock;       /* the list and the busy flags */
	struct conn *head;
};

int conn_fd(const struct conn *c)
{
	return c->fd;
}

static void unlink_conn(struct conns *cs, struct conn *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		cs->head = c->next;
	if (c->next)
		c->next->prev = c->prev;
	free(c);
}

static int watch(struct conns *cs, int op, int fd, void *ptr, uint32_t events)
{
	struct epoll_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.events = events;
	ev.data.ptr = ptr;
	if (epoll_ctl(cs->epfd, op, fd, &ev) == 0)
		return 0;
	log_warn("epoll_ctl failed", "fd=%d err=%s", fd, log_q(strerror(errno)));
	return -1;
}

struct conns *conns_new(struct app *app, int listen_fd)
{
	struct conns *cs = xcalloc(1, sizeof(*cs));
	int flags;

	cs->app = app;
	cs->listen_fd = listen_fd;
	cs->epfd = epoll_create1(EPOLL_CLOEXEC);
	cs->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	pthread_mutex_init(&cs->poll_lock, NULL);
	pthread_mutex_init(&cs->lock, NULL);
	/* Non-blocking, so that a connection gone between epoll_wait and
	 * accept cannot block the poller (inherited sockets included). */
	flags = fcntl(listen_fd, F_GETFL);
	if (cs->epfd < 0 || cs->wake_fd < 0 || flags < 0 ||
	    fcntl(listen_fd, F_SETFL, flags | O_NONBLOCK) < 0) {
		log_error("cannot set up polling", "err=%s", log_q(strerror(errno)));
		conns_free(cs);
		return NULL;
	}
	if (watch(cs, EPOLL_CTL_ADD, listen_fd, &cs->listen_fd, EPOLLIN) ||
	    watch(cs, EPOLL_CTL_ADD, cs->wake_fd, &cs->wake_fd, EPOLLIN)) {
		conns_free(cs);
		return NULL;
	}
	return cs;
}

void conns_wake(struct conns *cs)
{
	uint64_t one = 1;

	if (write(cs->wake_fd, &one, sizeof(one)) != (ssize_t)sizeof(one))
		log_error("cannot wake the workers", "err=%s", log_q(strerror(errno)));
}

/* Every worker has returned: what is left was idle (normally nothing). */
void conns_free(struct conns *cs)
{
	if (!cs)
		return;
	while (cs->head) {
		close(cs->head->fd);
		unlink_conn(cs, cs->head);
	}
	if (cs->epfd >= 0)
		close(cs->epfd);
	if (cs->wake_fd >= 0)
		close(cs->wake_fd);
	pthread_mutex_destroy(&cs->poll_lock);
	pthread_mutex_destroy(&cs->lock);
	free(cs);
}

/* Watch a new connection until its first request arrives: even a new
 * connection may be idle. */
static void add_conn(struct conns *cs, int fd, const struct sockaddr_storage *sa)
{
	int one = 1;

	/* What libfcgi's own accept did for TCP: a reply is a few small
	 * records, which Nagle's algorithm would hold back. */
	if ((sa->ss_family == AF_INET || sa->ss_family == AF_INET6) &&
	    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)))
		log_warn("cannot set TCP_NODELAY", "err=%s", log_q(strerror(errno)));

	struct conn *c = xcalloc(1, sizeof(*c));
	c->fd = fd;
	pthread_mutex_lock(&cs->lock);
	c->next = cs->head;
	if (cs->head)
		cs->head->prev = c;
	cs->head = c;
	pthread_mutex_unlock(&cs->lock);
	if (watch(cs, EPOLL_CTL_ADD, fd, c, EPOLLIN | EPOLLONESHOT)) {
		pthread_mutex_lock(&cs->lock);
		unlink_conn(cs, c);
		pthread_mutex_unlock(&cs->lock);
		close(fd);
		return;
	}
	atomic_fetch_add_explicit(&cs->app->metrics->connections_accepted, 1,
				  memory_order_relaxed);
}

/* Accept the connections waiting (the poller, under poll_lock). All of
 * them, up to a batch: one per report of the listener would leave new
 * connections waiting a whole round of epoll's ready list each, behind
 * the requests on kept connections, while taken together they line up
 * with those requests in the order they arrive. */
static void accept_pending(struct conns *cs)
{
	for (int i = 0; i < ACCEPT_BATCH; i++) {
		struct sockaddr_storage sa;
		socklen_t len = sizeof(sa);
		int fd = accept4(cs->listen_fd, (struct sockaddr *)&sa, &len, SOCK_CLOEXEC);

		if (fd >= 0) {
			add_conn(cs, fd, &sa);
			continue;
		}
		if (errno == EINTR || errno == ECONNABORTED)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return;
		/* Out of descriptors or memory (or a broken listener): pause
		 * rather than spin on a listener that stays readable. */
		time_t now = time(NULL);
		if (now != cs->warned)
			log_warn("cannot accept a connection", "err=%s", log_q(strerror(errno)));
		cs->warned = now;
		struct timespec pause = {0, 50 * 1000 * 1000};
		nanosleep(&pause, NULL);
		return;
	}
}

/* Stopping and nothing left to read: close the idle connections, so that
 * nginx opens new ones (queued in the backlog, for a successor under
 * systemd) rather than send requests nobody will read. */
static void close_idle(struct conns *cs)
{
	pthread_mutex_lock(&cs->lock);
	for (struct conn *c = cs->head, *next; c; c = next) {
		next = c->next;
		if (!c->busy) {
			close(c->fd);
			unlink_conn(cs, c);
		}
	}
	pthread_mutex_unlock(&cs->lock);
}

size_t conns_next(struct conns *cs, struct conn **out, size_t max)
{
	struct epoll_event ev[WEBHOOK_BATCH_MAX];
	size_t got = 0;

	if (max > WEBHOOK_BATCH_MAX || max == 0)
		max = max ? WEBHOOK_BATCH_MAX : 1;
	pthread_mutex_lock(&cs->poll_lock);
	while (got == 0) {
		/* Once stopping: accept nothing more, but serve the requests
		 * already waiting on open connections, then return none. */
		if (cs->app->stop && !cs->draining) {
			cs->draining = true;
			watch(cs, EPOLL_CTL_DEL, cs->listen_fd, NULL, 0);
			watch(cs, EPOLL_CTL_DEL, cs->wake_fd, NULL, 0);
		}
		/* Each connection comes once (EPOLLONESHOT): whatever is
		 * ready now, up to max, is this worker's. The listener may
		 * take a place: then there is one connection fewer. */
		int n = epoll_wait(cs->epfd, ev, (int)max, cs->draining ? 0 : -1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			log_error("epoll_wait failed", "err=%s", log_q(strerror(errno)));
		if (n <= 0)
			break;
		bool accept_now = false;
		pthread_mutex_lock(&cs->lock);
		for (int i = 0; i < n; i++) {
			if (ev[i].data.ptr == &cs->wake_fd)
				continue;
			if (ev[i].data.ptr == &cs->listen_fd) {
				accept_now = true;
				continue;
			}
			struct conn *c = ev[i].data.ptr;
			c->busy = true;
			out[got++] = c;
		}
		pthread_mutex_unlock(&cs->lock);
		if (accept_now)
			accept_pending(cs);
	}
	if (got == 0)
		close_idle(cs);
	pthread_mutex_unlock(&cs->poll_lock);
	return got;
}

void conns_release(struct conns *cs, struct conn *c, bool kept)
{
	pthread_mutex_lock(&cs->lock);
	if (kept && !cs->app->stop) {
		c->busy = false;
		if (!watch(cs, EPOLL_CTL_MOD, c->fd, c, EPOLLIN | EPOLLONESHOT)) {
			pthread_mutex_unlock(&cs->lock);
			return;
		}
	}
	/* Kept but stopping (or no longer watched): ours to close. One not
	 * kept, libfcgi has closed already. */
	if (kept)
		close(c->fd);
	unlink_conn(cs, c);
	pthread_mutex_unlock(&cs->lock);
}
