/*
 * A closed-loop WebSocket echo load client for benchmarks/ws.py, in C so that it cannot shape
 * the result: one process, one epoll set, N connections. Each connection does the HTTP/1.1
 * upgrade handshake (blocking, before the clock starts; the 101 and its Sec-WebSocket-Accept
 * are checked), then keeps exactly one message in flight: it sends a masked binary frame of
 * --size bytes, waits until the whole echo is back (any fragmentation, checked byte for byte
 * as it streams in), records the round trip with CLOCK_MONOTONIC, and sends the next one.
 *
 * Every message uses the same pre-built frame with one fixed masking key: RFC 6455 wants an
 * unpredictable key per frame against cache poisoning by intermediaries, which do not exist on
 * loopback, and the servers unmask it all the same.
 *
 * Phases: connect and handshake (all of it within --connect-timeout), --warmup seconds
 * unrecorded, then --duration seconds recorded. Output: one JSON object on stdout, with the
 * client's own CPU time (getrusage) over the recorded window.
 *
 * A connection that fails (reset, early EOF, a close frame, a wrong echo, a bad frame) is
 * closed and counted in "errors"; the others carry on. At the end each live connection sends
 * a close frame (1000) and is closed. Exit status 0 unless the arguments are wrong or no
 * connection could be made at all (status 2, JSON still printed).
 *
 * Build: cc -O2 -o ws_client ws_client.c   (benchmarks/ws.py does this and caches it)
 * Run:   ws_client --port 7000 [--host 127.0.0.1] [--conns 64] [--size 64]
 *                  [--duration 2] [--warmup 0.5] [--connect-timeout 10]
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
#include <sys/time.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

/* RFC 6455's sample key and its accept value. */
#define WS_KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define WS_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

struct conn {
    int fd;
    size_t sent;       /* bytes of the current frame written */
    uint64_t t_send;   /* when the current message was started, ns */
    int want_out;      /* registered for EPOLLOUT (a partial write is pending) */
    /* the incoming frame parser */
    unsigned char hdr[14];
    size_t hdr_got;    /* header bytes read of the current frame */
    size_t hdr_need;   /* header length once known (2, 4 or 10), else 0 */
    uint64_t left;     /* payload bytes still to come in the current frame */
    int opcode, fin;
    size_t msg_got;    /* bytes of the echoed message so far */
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
        if (!v) return;
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

static int send_all_blocking(int fd, const char *p, size_t n) {
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Connect (retried with backoff until `deadline`), then the upgrade handshake, blocking with a
 * receive timeout. Returns a non-blocking fd with TCP_NODELAY, or -1 with *err set. */
static int open_ws(const struct sockaddr_in *addr, const char *host, int port, uint64_t deadline,
                   int *err) {
    long delay = 5;
    int fd;
    for (;;) {
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            *err = errno;
            return -1;
        }
        int r;
        do {
            r = connect(fd, (const struct sockaddr *)addr, sizeof *addr);
        } while (r == -1 && errno == EINTR);
        if (r == 0) break;
        int e = errno;
        *err = e;
        close(fd);
        if (e != ECONNREFUSED && e != ETIMEDOUT && e != EAGAIN && e != ECONNRESET) return -1;
        if (now_ns() + (uint64_t)delay * 1000000u > deadline) return -1;
        sleep_ms(delay);
        delay = delay * 2 > 1000 ? 1000 : delay * 2;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    uint64_t t = now_ns();
    uint64_t left_ns = deadline > t ? deadline - t : 1000000u;
    struct timeval tv = {(time_t)(left_ns / 1000000000u), (long)(left_ns % 1000000000u / 1000)};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);

    char req[512];
    int n = snprintf(req, sizeof req,
                     "GET /echo HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: " WS_KEY "\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n",
                     host, port);
    if (send_all_blocking(fd, req, (size_t)n) < 0) {
        *err = errno ? errno : EPIPE;
        close(fd);
        return -1;
    }
    /* Read the response head a byte at a time: the server sends nothing after it until we
     * send a message, and this way nothing past the head is consumed. */
    char head[4096];
    size_t got = 0;
    while (got < sizeof head - 1) {
        ssize_t r = recv(fd, head + got, 1, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            *err = r == 0 ? ECONNRESET : errno;
            close(fd);
            return -1;
        }
        got++;
        if (got >= 4 && memcmp(head + got - 4, "\r\n\r\n", 4) == 0) break;
    }
    head[got] = 0;
    if (strncmp(head, "HTTP/1.1 101", 12) != 0 || !strstr(head, WS_ACCEPT)) {
        fprintf(stderr, "ws_client: bad handshake response: %.200s\n", head);
        *err = EPROTO;
        close(fd);
        return -1;
    }
    struct timeval zero = {0, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &zero, sizeof zero);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

struct state {
    int ep;
    size_t size;             /* message payload bytes */
    const unsigned char *payload;
    const unsigned char *frame; /* the masked frame, header included */
    size_t frame_len;
    struct conn *conns;
    int alive;
    long errors;
    int last_error;
    int recording;
    uint64_t window_end;
    struct samples lat;
    uint64_t total;
    unsigned char rbuf[65536];
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

static int flush_out(struct state *st, struct conn *c, int idx) {
    while (c->sent < st->frame_len) {
        ssize_t n = send(c->fd, st->frame + c->sent, st->frame_len - c->sent, MSG_NOSIGNAL);
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
    c->msg_got = 0;
    c->t_send = t;
    flush_out(st, c, idx);
}

/* Feed received bytes to the frame parser. Returns 1 when the whole echo has arrived (the
 * caller starts the next message), 0 to wait for more, -1 after failing the connection. */
static int feed(struct state *st, struct conn *c, const unsigned char *p, size_t n) {
    while (n) {
        if (c->hdr_need == 0 || c->hdr_got < c->hdr_need) {
            c->hdr[c->hdr_got++] = *p++;
            n--;
            if (c->hdr_got == 2) {
                if (c->hdr[1] & 0x80) { /* a server must not mask */
                    fail(st, c, EPROTO);
                    return -1;
                }
                unsigned len7 = c->hdr[1] & 0x7f;
                c->hdr_need = len7 == 126 ? 4 : len7 == 127 ? 10 : 2;
            }
            if (c->hdr_need == 0 || c->hdr_got < c->hdr_need) continue;
            unsigned len7 = c->hdr[1] & 0x7f;
            uint64_t len = len7;
            if (len7 == 126) len = (uint64_t)c->hdr[2] << 8 | c->hdr[3];
            if (len7 == 127) {
                len = 0;
                for (int i = 2; i < 10; i++) len = len << 8 | c->hdr[i];
            }
            c->fin = c->hdr[0] & 0x80;
            c->opcode = c->hdr[0] & 0x0f;
            c->left = len;
            if (c->opcode == 0x8) { /* close: the server gave up on us */
                fail(st, c, ECONNRESET);
                return -1;
            }
            if (c->opcode == 0x2 || c->opcode == 0x0) {
                if (c->msg_got + len > st->size) {
                    fail(st, c, EBADMSG);
                    return -1;
                }
            } else if (c->opcode != 0x9 && c->opcode != 0xA) {
                fail(st, c, EBADMSG); /* text, or a reserved opcode */
                return -1;
            }
        }
        /* the payload of the current frame */
        size_t take = c->left < n ? (size_t)c->left : n;
        if (c->opcode == 0x2 || c->opcode == 0x0) {
            if (memcmp(p, st->payload + c->msg_got, take) != 0) {
                fail(st, c, EBADMSG);
                return -1;
            }
            c->msg_got += take;
        } /* ping and pong payloads are skipped (no server here pings) */
        p += take;
        n -= take;
        c->left -= take;
        if (c->left == 0) {
            int data = c->opcode == 0x2 || c->opcode == 0x0;
            int done = data && c->fin && c->msg_got == st->size;
            if (data && c->fin && !done) {
                fail(st, c, EBADMSG); /* a short message */
                return -1;
            }
            c->hdr_got = 0;
            c->hdr_need = 0;
            if (done) {
                if (n) { /* nothing may follow: one message in flight */
                    fail(st, c, EBADMSG);
                    return -1;
                }
                return 1;
            }
        }
    }
    return 0;
}

static void on_readable(struct state *st, struct conn *c, int idx) {
    for (;;) {
        ssize_t n = recv(c->fd, st->rbuf, sizeof st->rbuf, 0);
        if (n > 0) {
            int r = feed(st, c, st->rbuf, (size_t)n);
            if (r < 0) return;
            if (r == 1) {
                uint64_t t = now_ns();
                st->total++;
                if (st->recording && t <= st->window_end) push(&st->lat, t - c->t_send);
                start_message(st, c, idx, t);
                return;
            }
        } else if (n == 0) {
            fail(st, c, ECONNRESET);
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
            "usage: ws_client --port P [--host 127.0.0.1] [--conns 64] [--size 64]\n"
            "                 [--duration 2] [--warmup 0.5] [--connect-timeout 10]\n");
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
        fprintf(stderr, "ws_client: --host must be an IPv4 address, got %s\n", host);
        return 2;
    }

    struct state *st = calloc(1, sizeof *st);
    unsigned char *payload = malloc((size_t)size);
    unsigned char *frame = malloc((size_t)size + 14);
    if (!st || !payload || !frame) {
        fprintf(stderr, "ws_client: out of memory\n");
        return 2;
    }
    st->size = (size_t)size;
    st->conns = calloc((size_t)nconns, sizeof *st->conns);
    struct epoll_event *events = calloc((size_t)nconns, sizeof *events);
    if (!st->conns || !events) {
        fprintf(stderr, "ws_client: out of memory\n");
        return 2;
    }
    for (long i = 0; i < size; i++) payload[i] = (unsigned char)('a' + i % 26);
    /* the masked binary frame: FIN + opcode 2, MASK + length, key, masked payload */
    static const unsigned char key[4] = {0x37, 0xfa, 0x21, 0x3d};
    size_t h = 0;
    frame[h++] = 0x82;
    if (size < 126) {
        frame[h++] = (unsigned char)(0x80 | size);
    } else if (size < 65536) {
        frame[h++] = 0x80 | 126;
        frame[h++] = (unsigned char)(size >> 8);
        frame[h++] = (unsigned char)size;
    } else {
        frame[h++] = 0x80 | 127;
        for (int s = 56; s >= 0; s -= 8) frame[h++] = (unsigned char)((uint64_t)size >> s);
    }
    memcpy(frame + h, key, 4);
    h += 4;
    for (long i = 0; i < size; i++) frame[h + (size_t)i] = payload[i] ^ key[i % 4];
    st->payload = payload;
    st->frame = frame;
    st->frame_len = h + (size_t)size;
    st->ep = epoll_create1(EPOLL_CLOEXEC);
    if (st->ep < 0) {
        perror("epoll_create1");
        return 2;
    }

    long connect_errors = 0;
    uint64_t connect_deadline = now_ns() + (uint64_t)(connect_timeout * 1e9);
    for (int i = 0; i < nconns; i++) {
        int err = 0;
        int fd = open_ws(&addr, host, port, connect_deadline, &err);
        st->conns[i].fd = fd;
        if (fd < 0) {
            connect_errors++;
            st->last_error = err;
            continue;
        }
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        epoll_ctl(st->ep, EPOLL_CTL_ADD, fd, &ev);
        st->alive++;
    }
    st->errors = connect_errors;
    uint64_t t0 = now_ns();
    for (int i = 0; i < nconns; i++)
        if (st->conns[i].fd >= 0) start_message(st, &st->conns[i], i, t0);

    run_until(st, t0 + (uint64_t)(warmup * 1e9), events, nconns);
    double cpu0 = cpu_seconds();
    uint64_t start = now_ns();
    st->recording = 1;
    st->window_end = start + (uint64_t)(duration * 1e9);
    run_until(st, st->window_end, events, nconns);
    uint64_t end = now_ns();
    double cpu = cpu_seconds() - cpu0;
    double elapsed = (double)(end - start) / 1e9;
    if (elapsed <= 0) elapsed = 1e-9;

    qsort(st->lat.v, st->lat.n, sizeof *st->lat.v, cmp_u64);
    size_t n = st->lat.n;
    double p50 = n ? st->lat.v[n / 2] / 1e3 : 0.0;
    size_t i99 = (size_t)((double)n * 0.99);
    double p99 = n ? st->lat.v[i99 < n ? i99 : n - 1] / 1e3 : 0.0;
    printf("{\"client\": \"c\", \"conns\": %d, \"size\": %ld, \"messages\": %zu, "
           "\"msgs_per_s\": %.1f, \"p50_us\": %.1f, \"p99_us\": %.1f, \"errors\": %ld, "
           "\"connect_errors\": %ld, \"last_error\": \"%s\", \"cpu_s\": %.4f, "
           "\"elapsed_s\": %.4f, \"client_cpu_pct\": %.1f, \"total_messages\": %llu}\n",
           nconns, size, n, n / elapsed, p50, p99, st->errors, connect_errors,
           st->last_error ? strerror(st->last_error) : "", cpu, elapsed, 100.0 * cpu / elapsed,
           (unsigned long long)st->total);
    fflush(stdout);
    /* a masked close frame, code 1000, best effort (a message may still be in flight) */
    static const unsigned char close_frame[8] = {0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8};
    for (int i = 0; i < nconns; i++) {
        if (st->conns[i].fd < 0) continue;
        if (st->conns[i].sent == st->frame_len)
            (void)!send(st->conns[i].fd, close_frame, sizeof close_frame, MSG_NOSIGNAL);
        close(st->conns[i].fd);
    }
    return st->alive == 0 && connect_errors == nconns ? 2 : 0;
}
