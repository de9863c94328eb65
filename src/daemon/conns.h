/* The slow-client defences: every open connection and its deadlines (conns.c). */
#ifndef SQD_CONNS_H
#define SQD_CONNS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <microhttpd.h>
#include <uv.h>

#include "cfg.h"
#include "log.h"

/*
 * Every open connection, for the slow-client defences: a deadline for a
 * request's line and headers, a least upload rate, and a reserve of free
 * slots kept by closing the oldest connection still sending headers.
 * Created and freed by MHD's connection notifications (MHD thread); the
 * loop thread's tick sweeps the list. All fields under sqd_conns.lock.
 * A connection is closed from outside with shutdown(2) on its socket,
 * which MHD then sees as the client's end; the record is unlinked before
 * MHD closes the socket, so a swept fd is never a reused one.
 */
enum sqd_conn_phase {
    SQD_CONN_HEADERS, /* waiting for (the rest of) a request's line and headers */
    SQD_CONN_IDLE,    /* keep-alive between requests: closed after connection-timeout */
    SQD_CONN_BODY,    /* receiving an upload */
    SQD_CONN_BUSY     /* being answered, or a job runs: no deadline */
};

struct sqd_conn {
    struct sqd_conn *prev, *next;
    int fd;
    enum sqd_conn_phase phase;
    uint64_t since;         /* monotonic ns: start of the phase */
    uint64_t bytes;         /* body bytes received in the phase */
    unsigned closed_status; /* 408 or 503 once swept or evicted: for the access log */
    char addr[48];          /* the client address, for the access log */
};

struct sqd_conns {
    uv_mutex_t lock;
    struct sqd_conn *head, *tail;
    size_t count;
    atomic_uint_fast64_t timed_out; /* closed by a deadline */
    atomic_uint_fast64_t evicted;   /* closed to keep the reserve */
    const struct sqd_config *cfg;   /* the limits (borrowed) */
    struct sqd_log *log;            /* where closes are logged (borrowed) */
};

/* Set up an empty list that reads its limits from cfg and logs to log. False: no mutex. */
bool sqd_conns_init(struct sqd_conns *cs, const struct sqd_config *cfg, struct sqd_log *log);
struct sqd_conn *sqd_conn_open(struct sqd_conns *cs, struct MHD_Connection *conn);
void sqd_conn_close(struct sqd_conns *cs, struct sqd_conn *c);
void sqd_conn_phase(struct sqd_conns *cs, struct sqd_conn *c, enum sqd_conn_phase phase);
/* A request line arrived: an idle keep-alive connection starts its header deadline. */
void sqd_conn_request_line(struct sqd_conns *cs, struct sqd_conn *c);
void sqd_conn_body(struct sqd_conns *cs, struct sqd_conn *c, size_t n);
/* How the connection was closed by a sweep (0 = it was not). */
unsigned sqd_conn_closed_status(struct sqd_conns *cs, struct sqd_conn *c);
/* Loop thread: close connections past their deadlines. */
void sqd_conns_sweep(struct sqd_conns *cs);

#endif
