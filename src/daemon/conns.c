/*
 * The slow-client defences (see struct sqd_conn in conns.h). libmicrohttpd
 * resets its connection timeout on every byte, so a client that sends one
 * header byte a second holds a slot for ever; with enough of them no slot
 * is left. Here every connection has a deadline for its headers and a least
 * upload rate, and a new connection that leaves fewer than
 * connection-reserve free slots closes the oldest one still in its headers:
 * a client that sends its request at once never waits behind slow ones.
 */
#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "conns.h"
#include "log.h"

static void client_addr(struct MHD_Connection *conn, char *out, size_t outsize)
{
    snprintf(out, outsize, "-");
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (!ci || !ci->client_addr)
        return;
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, out,
                  (socklen_t)outsize);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, out,
                  (socklen_t)outsize);
}

/* Close from outside: MHD reads the end of the stream and closes it. Under the lock. */
static void shut(struct sqd_conn *c, unsigned status)
{
    if (c->closed_status)
        return;
    c->closed_status = status;
    if (c->fd >= 0)
        shutdown(c->fd, SHUT_RDWR);
}

bool sqd_conns_init(struct sqd_conns *cs, const struct sqd_config *cfg, struct sqd_log *log)
{
    cs->head = cs->tail = NULL;
    cs->count = 0;
    atomic_init(&cs->timed_out, 0);
    atomic_init(&cs->evicted, 0);
    cs->cfg = cfg;
    cs->log = log;
    return uv_mutex_init(&cs->lock) == 0;
}

struct sqd_conn *sqd_conn_open(struct sqd_conns *cs, struct MHD_Connection *conn)
{
    struct sqd_conn *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    c->fd = ci ? ci->connect_fd : -1;
    c->phase = SQD_CONN_HEADERS;
    c->since = sqd_now_ns();
    client_addr(conn, c->addr, sizeof(c->addr));
    struct sqd_conn *victim = NULL;
    uv_mutex_lock(&cs->lock);
    c->prev = cs->tail;
    if (cs->tail)
        cs->tail->next = c;
    else
        cs->head = c;
    cs->tail = c;
    cs->count++;
    if (cs->count + cs->cfg->connection_reserve > cs->cfg->max_connections) {
        /* Keep the reserve: the oldest connection still sending its headers goes. */
        for (struct sqd_conn *o = cs->head; o && o != c; o = o->next) {
            if ((o->phase == SQD_CONN_HEADERS || o->phase == SQD_CONN_IDLE) && !o->closed_status &&
                (!victim || o->since < victim->since))
                victim = o;
        }
        if (victim)
            shut(victim, 503);
    }
    uv_mutex_unlock(&cs->lock);
    if (victim) {
        atomic_fetch_add(&cs->evicted, 1);
        sqd_logf(cs->log,
                 "closed a connection from %s still sending its headers: fewer than "
                 "connection-reserve free slots",
                 victim->addr);
    }
    return c;
}

void sqd_conn_close(struct sqd_conns *cs, struct sqd_conn *c)
{
    if (!c)
        return;
    uv_mutex_lock(&cs->lock);
    if (c->prev)
        c->prev->next = c->next;
    else
        cs->head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        cs->tail = c->prev;
    cs->count--;
    uv_mutex_unlock(&cs->lock);
    free(c);
}

void sqd_conn_phase(struct sqd_conns *cs, struct sqd_conn *c, enum sqd_conn_phase phase)
{
    if (!c)
        return;
    uv_mutex_lock(&cs->lock);
    c->phase = phase;
    c->since = sqd_now_ns();
    c->bytes = 0;
    uv_mutex_unlock(&cs->lock);
}

void sqd_conn_request_line(struct sqd_conns *cs, struct sqd_conn *c)
{
    if (!c)
        return;
    uv_mutex_lock(&cs->lock);
    if (c->phase == SQD_CONN_IDLE) {
        c->phase = SQD_CONN_HEADERS;
        c->since = sqd_now_ns();
    }
    uv_mutex_unlock(&cs->lock);
}

void sqd_conn_body(struct sqd_conns *cs, struct sqd_conn *c, size_t n)
{
    if (!c)
        return;
    uv_mutex_lock(&cs->lock);
    c->bytes += n;
    uv_mutex_unlock(&cs->lock);
}

unsigned sqd_conn_closed_status(struct sqd_conns *cs, struct sqd_conn *c)
{
    if (!c)
        return 0;
    uv_mutex_lock(&cs->lock);
    unsigned s = c->closed_status;
    uv_mutex_unlock(&cs->lock);
    return s;
}

void sqd_conns_sweep(struct sqd_conns *cs)
{
    uint64_t now = sqd_now_ns();
    uint64_t deadline = cs->cfg->header_timeout * 1000000000u;
    uint64_t idle = cs->cfg->connection_timeout * 1000000000u;
    unsigned headers = 0, slow = 0;
    uv_mutex_lock(&cs->lock);
    for (struct sqd_conn *c = cs->head; c; c = c->next) {
        if (c->closed_status)
            continue;
        if (c->phase == SQD_CONN_IDLE) {
            /* Bytes of a next request that never completes its line do not keep it open. */
            if (now - c->since > idle) {
                shut(c, 408);
                headers++;
            }
            continue;
        }
        if (now - c->since <= deadline)
            continue;
        if (c->phase == SQD_CONN_HEADERS) {
            shut(c, 408);
            headers++;
        } else if (c->phase == SQD_CONN_BODY && cs->cfg->min_body_rate) {
            /* bytes / seconds < rate, without the division */
            double secs = (double)(now - c->since) / 1e9;
            if ((double)c->bytes < (double)cs->cfg->min_body_rate * secs) {
                shut(c, 408);
                slow++;
            }
        }
    }
    uv_mutex_unlock(&cs->lock);
    if (headers + slow) {
        atomic_fetch_add(&cs->timed_out, headers + slow);
        sqd_logf(cs->log,
                 "closed %u connection(s) past header-timeout (or idle past "
                 "connection-timeout) and %u upload(s) slower than min-body-rate",
                 headers, slow);
    }
}
