/* azure_provider: pod VMs on Azure through ARM (spec providers-azure.md, DECISIONS 16-18).
 *
 * Everything runs on the loop: HTTPS through http.h (libcurl multi), tokens through auth.h,
 * the request and reply documents through azjson.h. A create is one VM PUT (NIC and OS disk
 * made by Compute with deleteOption Delete) polled at Retry-After or every second while the
 * NIC is read until it has a private IP, which is handed over at once; a delete removes the
 * VM, then the NIC, public IP and OS disk by name if a failed create left them; 404 is
 * success everywhere. The provider owns its operations; shutdown drops them without
 * callbacks. */
#ifndef PROVIDERS_AZURE_PROVIDER_H
#define PROVIDERS_AZURE_PROVIDER_H

#include "../provider.h"

#define AZ_API_COMPUTE "2022-11-01"
#define AZ_API_DISK "2022-07-02"
#define AZ_API_NETWORK "2022-09-01"
#define AZ_API_GALLERY "2022-03-03"   /* galleries, community galleries */
#define AZ_API_RESOURCES "2021-04-01" /* resource groups */
#define AZ_USERDATA_B64_MAX 65536

extern const struct provider_ops azure_provider_ops;

#endif
