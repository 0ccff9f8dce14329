/* notify: the systemd readiness protocol (sd_notify) without libsystemd. Sends one
 * datagram such as "READY=1" to $NOTIFY_SOCKET if it is set; owns nothing. */
#ifndef ADAPTOR_NOTIFY_H
#define ADAPTOR_NOTIFY_H

/* Returns 0 if sent or NOTIFY_SOCKET is unset, -1 (errno set) on failure. */
int notify_send(const char *state);

#endif
