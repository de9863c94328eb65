/* systemd notification (notify.c). */
#ifndef SQD_NOTIFY_H
#define SQD_NOTIFY_H

/* Tell systemd (NOTIFY_SOCKET) a state such as "READY=1"; no-op without it. */
void sqd_notify(const char *state);

#endif
