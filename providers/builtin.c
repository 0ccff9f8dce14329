/* The providers shipped in the daemon binary. */
#include "azure/azure_provider.h"
#include "libvirt/libvirt_provider.h"
#include "provider.h"

const struct provider_ops *const provider_table[] = {
    &azure_provider_ops,
    &libvirt_provider_ops,
    NULL,
};
