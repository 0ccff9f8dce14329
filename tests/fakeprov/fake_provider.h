/* fake_provider: a test double of a cloud, linked only into the test build of the daemon.
 * An instance is a file <fake-dir>/<instance name> written when a create starts (like a
 * cloud accepting a request) and removed by delete, so tests can see leaks across daemon
 * crashes. Latency and failures are set with -fake-* flags. */
#ifndef TESTS_FAKE_PROVIDER_H
#define TESTS_FAKE_PROVIDER_H

#include "../../providers/provider.h"

extern const struct provider_ops fake_provider_ops;

#endif
