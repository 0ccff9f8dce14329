/* The providers shipped in the daemon binary. */
#include "libvirt/libvirt_provider.h"
#include "provider.h"

const struct provider_ops *const provider_table[] = {
    &libvirt_provider_ops,
    NULL,
};
