/* The providers shipped in the daemon binary. */
#include "provider.h"

const struct provider_ops *const provider_table[] = {
    NULL,
};
