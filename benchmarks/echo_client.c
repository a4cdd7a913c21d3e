/*
 * A closed-loop echo load client for benchmarks/echo.py, in C so that it cannot shape the
 * result: one process, one epoll set, N connections, each with exactly one message in
 * flight. A connection sends its message, waits until the whole echo is back (and checks
 * it byte for byte), records the round trip with CLOCK_MONOTONIC, and sends the next one.
 * The client's cost per message is one send, one or more recvs and a share of an
 * epoll_wait, far below any Python server's, and it reports its own CPU time so the
 * benchmark can show that.
 *
 * Phases: connect (retried, all of it within --connect-timeout), --warmup seconds unrecorded,
 * then --duration seconds recorded. Messages that complete inside the recorded window count.
 * Output: one JSON object on stdout. CPU time (getrusage) is taken over the window only.
 *
 * A connection that fails (ECONNRESET, EPIPE, an early EOF, a wrong echo) is closed and
 * counted in "errors"; the others carry on. Exit status 0 unless the arguments are wrong or
 * no connection could be made at all (status 2, JSON still printed).
 *
 * Build: cc -O2 -o echo_client echo_client.c   (benchmarks/echo.py does this and caches it)
 * Run:   echo_client --port 7000 [--host 127.0.0.1] [--conns 64] [--size 64]
 *                    [--duration 2] [--warmup 0.5] [--connect-timeout 10]
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

struct conn {
    int fd;
    size_t sent;      /* bytes of the current message written */
    size_t received;  /* bytes of its echo read */
    uint64_t t_send;  /* when the current message was started, ns */
    int want_out;     /* registered for EPOLLOUT (a partial write is pending) */
};

struct samples {
    uint64_t *v;
    size_t n, cap;
};

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static double cpu_seconds(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

static void push(struct samples *s, uint64_t x) {
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 1u << 16;
        uint64_t *v = realloc(s->v, cap * sizeof *v);
        if (!v) return; /* out of memory: drop the sample, keep measuring */
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = x;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

/* A blocking connect with a bounded retry: a full accept queue or a server that is still
 * starting refuses or times out, so back off (5 ms doubling to 1 s) until `deadline` (ns),
 * which bounds the connect phase as a whole. Then non-blocking, with TCP_NODELAY. */
static int open_conn(const struct sockaddr_in *addr, uint64_t deadline, int *last_errno) {
    long delay = 5;
    for (;;) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            *last_errno = errno;
            return -1; /* EMFILE and friends: retrying will not help */
        }
        int r;
        do {
            r = connect(fd, (const struct sockaddr *)addr, sizeof *addr);
        } while (r == -1 && errno == EINTR);
        if (r == 0) {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
            return fd;
        }
        int err = errno;
        *last_errno = err;
        close(fd);
        if (err != ECONNREFUSED && err != ETIMEDOUT && err != EAGAIN && err != ECONNRESET)
            return -1;
        if (now_ns() + (uint64_t)delay * 1000000u > deadline) return -1;
        sleep_ms(delay);
        delay = delay * 2 > 1000 ? 1000 : delay * 2;
    }
}

struct state {
    int ep;
    size_t size;
    const unsigned char *payload;
    unsigned char *rbuf; /* one receive buffer per connection, size bytes each */
    struct conn *conns;
    int alive;
    long errors;
    int last_error;
    int recording;
    uint64_t window_end;
    struct samples lat;
    uint64_t total; /* every completed echo, warm-up included */
};

static void fail(struct state *st, struct conn *c, int err) {
    if (c->fd < 0) return;
    epoll_ctl(st->ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    st->alive--;
    st->errors++;
    st->last_error = err;
}

static void set_out(struct state *st, struct conn *c, int idx, int on) {
    if (c->want_out == on) return;
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.u32 = (uint32_t)idx};
    epoll_ctl(st->ep, EPOLL_CTL_MOD, c->fd, &ev);
    c->want_out = on;
}

/* Write what is left of the current message; 0 on success (maybe partial), -1 on failure. */
static int flush_out(struct state *st, struct conn *c, int idx) {
    while (c->sent < st->size) {
        ssize_t n = send(c->fd, st->payload + c->sent, st->size - c->sent, MSG_NOSIGNAL);
        if (n > 0) {
            c->sent += (size_t)n;
        } else if (n == -1 && errno == EINTR) {
            continue;
        } else if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            set_out(st, c, idx, 1);
            return 0;
        } else {
            fail(st, c, n == 0 ? EPIPE : errno);
            return -1;
        }
    }
    set_out(st, c, idx, 0);
    return 0;
}

static void start_message(struct state *st, struct conn *c, int idx, uint64_t t) {
    c->sent = 0;
    c->received = 0;
    c->t_send = t;
    flush_out(st, c, idx);
}

static void on_readable(struct state *st, struct conn *c, int idx) {
    unsigned char *buf = st->rbuf + (size_t)idx * st->size;
    for (;;) {
        /* Never read past the current message: with one in flight there is nothing after. */
        ssize_t n = recv(c->fd, buf + c->received, st->size - c->received, 0);
        if (n > 0) {
            c->received += (size_t)n;
            if (c->received < st->size) continue;
            uint64_t t = now_ns();
            if (memcmp(buf, st->payload, st->size) != 0) {
                fail(st, c, EBADMSG);
                return;
            }
            st->total++;
            if (st->recording && t <= st->window_end) push(&st->lat, t - c->t_send);
            start_message(st, c, idx, t);
            return; /* the next echo cannot be here yet */
        } else if (n == 0) {
            fail(st, c, ECONNRESET); /* the server closed while a message was in flight */
            return;
        } else if (errno == EINTR) {
            continue;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return;
        } else {
            fail(st, c, errno);
            return;
        }
    }
}

/* Run the event loop until `until` (ns, CLOCK_MONOTONIC) or until every connection failed. */
static void run_until(struct state *st, uint64_t until, struct epoll_event *events, int max) {
    for (;;) {
        uint64_t t = now_ns();
        if (t >= until || st->alive == 0) return;
        int timeout_ms = (int)((until - t) / 1000000u) + 1;
        int n = epoll_wait(st->ep, events, max, timeout_ms);
        if (n == -1) {
            if (errno == EINTR) continue;
            perror("epoll_wait");
            exit(1);
        }
        for (int i = 0; i < n; i++) {
            int idx = (int)events[i].data.u32;
            struct conn *c = &st->conns[idx];
            if (c->fd < 0) continue;
            if (events[i].events & (EPOLLERR | EPOLLHUP)) {
                int err = 0;
                socklen_t len = sizeof err;
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
                if (err || (events[i].events & EPOLLHUP)) {
                    fail(st, c, err ? err : ECONNRESET);
                    continue;
                }
            }
            if ((events[i].events & EPOLLOUT) && flush_out(st, c, idx) < 0) continue;
            if (events[i].events & EPOLLIN) on_readable(st, c, idx);
        }
    }
}

static void usage(void) {
    fprintf(stderr,
            "usage: echo_client --port P [--host 127.0.0.1] [--conns 64] [--size 64]\n"
            "                   [--duration 2] [--warmup 0.5] [--connect-timeout 10]\n");
    exit(2);
}

int main(int argc, char **argv) {
    const char *host = "127.0.0.1";
    int port = -1, nconns = 64;
    long size = 64;
    double duration = 2.0, warmup = 0.5, connect_timeout = 10.0;
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc) usage();
        const char *k = argv[i], *v = argv[++i];
        if (!strcmp(k, "--host")) host = v;
        else if (!strcmp(k, "--port")) port = atoi(v);
        else if (!strcmp(k, "--conns")) nconns = atoi(v);
        else if (!strcmp(k, "--size")) size = atol(v);
        else if (!strcmp(k, "--duration")) duration = atof(v);
        else if (!strcmp(k, "--warmup")) warmup = atof(v);
        else if (!strcmp(k, "--connect-timeout")) connect_timeout = atof(v);
        else usage();
    }
    if (port <= 0 || port > 65535 || nconns <= 0 || size <= 0 || duration <= 0 || warmup < 0 ||
        connect_timeout < 0)
        usage();
    signal(SIGPIPE, SIG_IGN);

    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
        fprintf(stderr, "echo_client: --host must be an IPv4 address, got %s\n", host);
        return 2;
    }

    struct state st = {.size = (size_t)size};
    unsigned char *payload = malloc((size_t)size);
    st.rbuf = malloc((size_t)size * (size_t)nconns);
    st.conns = calloc((size_t)nconns, sizeof *st.conns);
    struct epoll_event *events = calloc((size_t)nconns, sizeof *events);
    if (!payload || !st.rbuf || !st.conns || !events) {
        fprintf(stderr, "echo_client: out of memory\n");
        return 2;
    }
    for (long i = 0; i < size; i++) payload[i] = (unsigned char)('a' + i % 26);
    st.payload = payload;
    st.ep = epoll_create1(EPOLL_CLOEXEC);
    if (st.ep < 0) {
        perror("epoll_create1");
        return 2;
    }

    long connect_errors = 0;
    uint64_t connect_deadline = now_ns() + (uint64_t)(connect_timeout * 1e9);
    for (int i = 0; i < nconns; i++) {
        int err = 0;
        int fd = open_conn(&addr, connect_deadline, &err);
        st.conns[i].fd = fd;
        if (fd < 0) {
            connect_errors++;
            st.last_error = err;
            continue;
        }
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        epoll_ctl(st.ep, EPOLL_CTL_ADD, fd, &ev);
        st.alive++;
    }
    st.errors = connect_errors;
    uint64_t t0 = now_ns();
    for (int i = 0; i < nconns; i++)
        if (st.conns[i].fd >= 0) start_message(&st, &st.conns[i], i, t0);

    run_until(&st, t0 + (uint64_t)(warmup * 1e9), events, nconns);
    double cpu0 = cpu_seconds();
    uint64_t start = now_ns();
    st.recording = 1;
    st.window_end = start + (uint64_t)(duration * 1e9);
    run_until(&st, st.window_end, events, nconns);
    uint64_t end = now_ns();
    double cpu = cpu_seconds() - cpu0;
    double elapsed = (double)(end - start) / 1e9;
    if (elapsed <= 0) elapsed = 1e-9; /* every connection failed before the window */

    qsort(st.lat.v, st.lat.n, sizeof *st.lat.v, cmp_u64);
    size_t n = st.lat.n;
    double p50 = n ? st.lat.v[n / 2] / 1e3 : 0.0;
    size_t i99 = (size_t)((double)n * 0.99);
    double p99 = n ? st.lat.v[i99 < n ? i99 : n - 1] / 1e3 : 0.0;
    printf("{\"client\": \"c\", \"conns\": %d, \"size\": %ld, \"messages\": %zu, "
           "\"msgs_per_s\": %.1f, \"p50_us\": %.1f, \"p99_us\": %.1f, \"errors\": %ld, "
           "\"connect_errors\": %ld, \"last_error\": \"%s\", \"cpu_s\": %.4f, "
           "\"elapsed_s\": %.4f, \"client_cpu_pct\": %.1f, \"total_messages\": %llu}\n",
           nconns, size, n, n / elapsed, p50, p99, st.errors, connect_errors,
           st.last_error ? strerror(st.last_error) : "", cpu, elapsed, 100.0 * cpu / elapsed,
           (unsigned long long)st.total);
    fflush(stdout);
    for (int i = 0; i < nconns; i++)
        if (st.conns[i].fd >= 0) close(st.conns[i].fd);
    return st.alive == 0 && connect_errors == nconns ? 2 : 0;
}
