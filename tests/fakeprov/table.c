/* Provider table of the test build: the shipped providers plus the fake cloud. */
#include "../../providers/azure/azure_provider.h"
#include "../../providers/libvirt/libvirt_provider.h"
#include "fake_provider.h"

const struct provider_ops *const provider_table[] = {
    &fake_provider_ops,
    &azure_provider_ops,
    &libvirt_provider_ops,
    NULL,
};
