package main

// A fake Azure Resource Manager + Entra ID token endpoint over HTTPS on loopback (Go's
// net/http and crypto/tls: independent of the daemon's libcurl client). It behaves as the
// spec's part A says: client-secret token grant, the vmSizes listing, VM PUT that makes the
// NIC and OS disk as a side effect (deleteOption Delete) and answers 201 with an
// Azure-AsyncOperation to poll, VM/NIC GET, VM DELETE 202 + polling that removes the NIC and
// disk too, NIC/disk DELETE, 404 for what does not exist, ARM-style 400 for a VM body
// missing what part A.3 requires. The inventory (VMs, NICs, disks) is what tests assert on.

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	mrand "math/rand"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

const (
	armSub          = "sub-1"
	armRG           = "rg-1"
	armRegion       = "eastus"
	armSecret       = "s3cret-value"
	armTenant       = "tenant-1"
	armClient       = "client-1"
	armSubnet       = "/subscriptions/sub-1/resourceGroups/rg-1/providers/Microsoft.Network/virtualNetworks/v/subnets/s"
	armNSG          = "/subscriptions/sub-1/resourceGroups/rg-1/providers/Microsoft.Network/networkSecurityGroups/nsg"
	armImage        = "/subscriptions/sub-1/resourceGroups/rg-1/providers/Microsoft.Compute/galleries/g/images/i/versions/1.0.0"
	armImageDef     = "/subscriptions/sub-1/resourceGroups/rg-1/providers/Microsoft.Compute/galleries/g/images/i"
	armManagedImage = "/subscriptions/sub-1/resourceGroups/rg-1/providers/Microsoft.Compute/images/podvm"
	armCommunity    = "/CommunityGalleries/cg-1/Images/podvm/Versions/latest"
	armAssertType   = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
	armScopeARM     = "https://management.core.windows.net//.default"
)

type fakeVM struct {
	Body  map[string]interface{}
	Tags  map[string]interface{}
	State string // provisioningState
	PubIP bool
}

// Fault makes the next Times requests of one call type (see callType) fail: with Status
// (and Retry-After when set), or by closing the connection without a reply (Reset).
type Fault struct {
	Call       string
	Status     int
	Code       string // ARM error code; InternalServerError by default
	RetryAfter string
	Reset      bool
	Times      int
	Fired      int
}

type FakeARM struct {
	URL     string
	IMDSURL string // plain HTTP, as the real one
	CAFile  string
	fakeDir string
	nicIP   string
	srv     *http.Server
	imds    *http.Server

	mu    sync.Mutex
	VMs   map[string]*fakeVM
	NICs  map[string]bool
	Disks map[string]bool
	PIPs  map[string]bool
	// The user's managed disks (CSI volumes), by id: attached by a VM PUT that lists them in
	// dataDisks, detached when that VM is deleted (deleteOption Detach); never ours to delete.
	DataDisks map[string]*fakeDataDisk
	ops       map[string]int // operation id -> polls left before Succeeded
	opFail    map[string]string
	Requests  []string // "METHOD path"
	Calls     map[string]int
	Conns     int               // TLS connections the daemon opened
	Bodies    map[string][]byte // VM name -> PUT body

	// Auth: which flows are accepted and what they must present.
	Tokens       int            // tokens issued, all flows
	TokensByFlow map[string]int // "secret", "assertion", "imds"
	Assertions   []string       // client assertions presented, in order
	Assertion    string         // the one accepted now (workload identity)
	TokenTTL     int            // expires_in; 3599 by default
	tokenIssued  map[string]time.Time
	StaleTokens  int // ARM calls made with a token past its refresh point (expiry - 5 min) + 1 s
	Revoked      map[string]bool

	// Knobs.
	PollsPerCreate int           // InProgress answers before Succeeded
	PollRetryAfter string        // Retry-After on InProgress polls ("0" by default)
	OpRetryAfter   string        // Retry-After on the 201/202 that start a create or delete ("": none)
	Latency        time.Duration // every ARM answer comes this much later (set before use)
	Hold           chan struct{} // while open (not closed), create operations stay InProgress
	NICPollsNoIP   int           // NIC GETs answered without a private IP after each PUT
	PublicIP       string        // the address of public IPs
	FailCreate     string        // error code: the create operation ends Failed (VM, NIC, disk left)
	KeepOnDelete   bool          // VM DELETE leaves the NIC, disk and public IP (a failed create's leftovers)
	DeleteStatus   int           // status of an accepted VM DELETE (202 by default; 200 still names its operation)
	Faults         []*Fault
	stormUntil     time.Time
	stormAfter     int
	quietUntil     time.Time // no ARM request may arrive before this (Retry-After of a 429 we sent)
	quietSince     time.Time
	Violations     []string
	nicNoIP        map[string]int

	// The simulated node (node.go): each VM gets an address of its own and "boots" (its
	// namespace, forwarder and agent come up) when its PUT is accepted; it powers off when
	// its DELETE is. Called with f.mu held: they must not block.
	NICIPFor func(vm string) string
	OnCreate func(vm string)
	OnDelete func(vm string)

	chaos chaos
}

// chaos fails a seeded share of ARM requests (never token requests) one of five ways: 429
// with Retry-After, 500, 409 Conflict, a lost reply (the request is carried out, the answer
// never comes: the client must time out), or a reset before the request is read.
type chaos struct {
	mu     sync.Mutex
	rate   float64
	rng    *mrand.Rand
	hold   time.Duration
	counts map[string]int
}

// Chaos turns the random faults on (rate > 0) or off; hold bounds a lost reply.
func (f *FakeARM) Chaos(rate float64, seed int64, hold time.Duration) {
	f.chaos.mu.Lock()
	defer f.chaos.mu.Unlock()
	f.chaos.rate, f.chaos.rng, f.chaos.hold = rate, mrand.New(mrand.NewSource(seed)), hold
	if f.chaos.counts == nil {
		f.chaos.counts = map[string]int{}
	}
}

// ChaosCounts is how many faults of each kind were injected.
func (f *FakeARM) ChaosCounts() map[string]int {
	f.chaos.mu.Lock()
	defer f.chaos.mu.Unlock()
	out := map[string]int{}
	for k, v := range f.chaos.counts {
		out[k] = v
	}
	return out
}

func (f *FakeARM) chaosPick(r *http.Request) string {
	if strings.HasPrefix(r.URL.Path, "/fake/") || callType(r) == "token" {
		return ""
	}
	c := &f.chaos
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.rate <= 0 || c.rng.Float64() >= c.rate {
		return ""
	}
	kind := []string{"429", "500", "409", "lost", "reset"}[c.rng.Intn(5)]
	c.counts[kind]++
	return kind
}

// hangUp closes the connection without an answer; false if it could not.
func hangUp(w http.ResponseWriter) bool {
	if hj, ok := w.(http.Hijacker); ok {
		if c, _, err := hj.Hijack(); err == nil {
			c.Close()
			return true
		}
	}
	return false
}

func (f *FakeARM) handle(w http.ResponseWriter, r *http.Request) {
	if f.Latency > 0 && !strings.HasPrefix(r.URL.Path, "/fake/") {
		select { // the cloud's own pace, not a synchronisation
		case <-r.Context().Done():
			return
		case <-time.After(f.Latency):
		}
	}
	switch f.chaosPick(r) {
	case "":
		f.serve(w, r)
	case "429":
		w.Header().Set("Retry-After", "1")
		armErr(w, 429, "TooManyRequests", "injected throttling")
	case "500":
		armErr(w, 500, "InternalServerError", "injected server error")
	case "409":
		armErr(w, 409, "Conflict", "injected conflict: another operation is in progress on this resource")
	case "lost":
		f.serve(httptest.NewRecorder(), r) // done, but the answer is lost
		f.chaos.mu.Lock()
		hold := f.chaos.hold
		f.chaos.mu.Unlock()
		select {
		case <-r.Context().Done():
		case <-time.After(hold):
		}
		hangUp(w)
	case "reset":
		hangUp(w)
	}
}

func StartFakeARM(dir, fakeDir, nicIP string) (*FakeARM, error) {
	ca, err := newFakeCA("fake-arm-ca")
	if err != nil {
		return nil, err
	}
	cert, err := ca.ServerCert("fake-arm", []net.IP{net.ParseIP("127.0.0.1")})
	if err != nil {
		return nil, err
	}
	noteSecret("the Azure client secret", armSecret)
	f := &FakeARM{fakeDir: fakeDir, nicIP: nicIP, VMs: map[string]*fakeVM{}, NICs: map[string]bool{},
		Disks: map[string]bool{}, PIPs: map[string]bool{}, DataDisks: map[string]*fakeDataDisk{}, ops: map[string]int{}, opFail: map[string]string{},
		Bodies: map[string][]byte{}, PollsPerCreate: 2, PollRetryAfter: "0", TokenTTL: 3599,
		TokensByFlow: map[string]int{}, tokenIssued: map[string]time.Time{}, Revoked: map[string]bool{},
		Calls: map[string]int{}, nicNoIP: map[string]int{}, PublicIP: "127.0.0.1"}
	f.CAFile = filepath.Join(dir, "arm-ca.pem")
	if err := os.WriteFile(f.CAFile, ca.PEM, 0o644); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	f.URL = "https://" + ln.Addr().String()
	f.srv = serveTLS(ln, cert, f.handle, &f.mu, &f.Conns)
	iln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.srv.Close()
		return nil, err
	}
	f.IMDSURL = "http://" + iln.Addr().String()
	f.imds = &http.Server{Handler: http.HandlerFunc(f.serveIMDS)}
	go f.imds.Serve(iln)
	return f, nil
}

func (f *FakeARM) Close() {
	f.srv.Close()
	f.imds.Close()
}

// Env is what the daemon needs to use this fake (client-secret flow).
func (f *FakeARM) Env() []string {
	return []string{
		"AZURE_ARM_ENDPOINT=" + f.URL, "AZURE_AUTHORITY_HOST=" + f.URL + "/", "AZURE_CA_BUNDLE=" + f.CAFile,
		"AZURE_IMDS_ENDPOINT=" + f.IMDSURL,
		"AZURE_CLIENT_ID=" + armClient, "AZURE_CLIENT_SECRET=" + armSecret, "AZURE_TENANT_ID=" + armTenant,
		"AZURE_SUBSCRIPTION_ID=" + armSub, "AZURE_RESOURCE_GROUP=" + armRG, "AZURE_REGION=" + armRegion,
		"AZURE_SUBNET_ID=" + armSubnet, "AZURE_IMAGE_ID=" + armImage,
		"AZURE_INSTANCE_SIZES=Standard_DC2as_v5,Standard_DC4as_v5", "TAGS=team=peerpods, env = test",
	}
}

func armErr(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("x-ms-error-code", code)
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]interface{}{"error": map[string]string{"code": code, "message": msg}})
}

func reply(w http.ResponseWriter, status int, v interface{}) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// digs out a nested value by path of keys / array indexes ("0").
func dig(v interface{}, path ...string) interface{} {
	for _, k := range path {
		switch x := v.(type) {
		case map[string]interface{}:
			v = x[k]
		case []interface{}:
			var i int
			fmt.Sscan(k, &i)
			if i >= len(x) {
				return nil
			}
			v = x[i]
		default:
			return nil
		}
	}
	return v
}

// vmFields is every JSON path part A.3 allows in a VM PUT body ("[]" for array elements);
// true marks a leaf. Anything else is an unknown field, which ARM rejects.
var vmFields = map[string]bool{
	"location": true, "tags": false, "zones": false, "zones.[]": true,
	"properties.hardwareProfile.vmSize":                                                                                                       true,
	"properties.storageProfile.imageReference.id":                                                                                             true,
	"properties.storageProfile.imageReference.communityGalleryImageId":                                                                        true,
	"properties.storageProfile.osDisk.name":                                                                                                   true,
	"properties.storageProfile.osDisk.createOption":                                                                                           true,
	"properties.storageProfile.osDisk.caching":                                                                                                true,
	"properties.storageProfile.osDisk.deleteOption":                                                                                           true,
	"properties.storageProfile.osDisk.diskSizeGB":                                                                                             true,
	"properties.storageProfile.osDisk.managedDisk.storageAccountType":                                                                         true,
	"properties.storageProfile.osDisk.managedDisk.securityProfile.securityEncryptionType":                                                     true,
	"properties.storageProfile.dataDisks.[].createOption":                                                                                     true,
	"properties.storageProfile.dataDisks.[].deleteOption":                                                                                     true,
	"properties.storageProfile.dataDisks.[].lun":                                                                                              true,
	"properties.storageProfile.dataDisks.[].managedDisk.id":                                                                                   true,
	"properties.osProfile.adminUsername":                                                                                                      true,
	"properties.osProfile.computerName":                                                                                                       true,
	"properties.osProfile.linuxConfiguration.disablePasswordAuthentication":                                                                   true,
	"properties.osProfile.linuxConfiguration.ssh.publicKeys.[].keyData":                                                                       true,
	"properties.osProfile.linuxConfiguration.ssh.publicKeys.[].path":                                                                          true,
	"properties.networkProfile.networkApiVersion":                                                                                             true,
	"properties.networkProfile.networkInterfaceConfigurations.[].name":                                                                        true,
	"properties.networkProfile.networkInterfaceConfigurations.[].properties.deleteOption":                                                     true,
	"properties.networkProfile.networkInterfaceConfigurations.[].properties.networkSecurityGroup.id":                                          true,
	"properties.networkProfile.networkInterfaceConfigurations.[].properties.ipConfigurations.[].name":                                         true,
	"properties.networkProfile.networkInterfaceConfigurations.[].properties.ipConfigurations.[].properties.subnet.id":                         true,
	"properties.networkProfile.networkInterfaceConfigurations.[].properties.ipConfigurations.[].properties.publicIPAddressConfiguration.name": true,
	"properties.networkProfile.networkInterfaceConfigurations.[].properties.ipConfigurations.[].properties.publicIPAddressConfiguration.properties.deleteOption": true,
	"properties.securityProfile.securityType":                   true,
	"properties.securityProfile.uefiSettings.secureBootEnabled": true,
	"properties.securityProfile.uefiSettings.vTpmEnabled":       true,
	"properties.diagnosticsProfile.bootDiagnostics.enabled":     true,
	"properties.userData":                                       true,
}

// unknownField returns the first path of b that part A.3 does not allow, or "".
func unknownField(prefix string, v interface{}) string {
	switch x := v.(type) {
	case map[string]interface{}:
		if prefix == "tags" {
			return ""
		}
		for k, c := range x {
			p := k
			if prefix != "" {
				p = prefix + "." + k
			}
			if _, ok := vmFields[p]; !ok && !hasPrefixField(p) {
				return p
			}
			if e := unknownField(p, c); e != "" {
				return e
			}
		}
	case []interface{}:
		for _, c := range x {
			if e := unknownField(prefix+".[]", c); e != "" {
				return e
			}
		}
	default:
		if leaf, ok := vmFields[prefix]; !ok || !leaf {
			return prefix
		}
	}
	return ""
}

func hasPrefixField(p string) bool {
	for k := range vmFields {
		if strings.HasPrefix(k, p+".") {
			return true
		}
	}
	return false
}

// validateVM checks a VM PUT body against spec part A.3; "" when acceptable.
func validateVM(name string, b map[string]interface{}) string {
	if u := unknownField("", b); u != "" {
		return "unknown or misplaced field " + u
	}
	want := map[string]interface{}{
		"location":                                                                                                      armRegion,
		"properties.storageProfile.osDisk.name":                                                                         name + "-disk",
		"properties.storageProfile.osDisk.createOption":                                                                 "FromImage",
		"properties.storageProfile.osDisk.caching":                                                                      "ReadWrite",
		"properties.storageProfile.osDisk.deleteOption":                                                                 "Delete",
		"properties.storageProfile.osDisk.managedDisk.storageAccountType":                                               "Premium_LRS",
		"properties.osProfile.computerName":                                                                             name,
		"properties.osProfile.adminUsername":                                                                            "peerpod",
		"properties.osProfile.linuxConfiguration.disablePasswordAuthentication":                                         true,
		"properties.networkProfile.networkApiVersion":                                                                   "2020-11-01",
		"properties.networkProfile.networkInterfaceConfigurations.0.name":                                               name + "-net",
		"properties.networkProfile.networkInterfaceConfigurations.0.properties.deleteOption":                            "Delete",
		"properties.networkProfile.networkInterfaceConfigurations.0.properties.ipConfigurations.0.name":                 "ip-config",
		"properties.networkProfile.networkInterfaceConfigurations.0.properties.ipConfigurations.0.properties.subnet.id": armSubnet,
		"properties.diagnosticsProfile.bootDiagnostics.enabled":                                                         true,
		"properties.osProfile.linuxConfiguration.ssh.publicKeys.0.path":                                                 "/home/peerpod/.ssh/authorized_keys",
	}
	for k, v := range want {
		if got := dig(b, strings.Split(k, ".")...); got != v {
			return fmt.Sprintf("%s is %v, want %v", k, got, v)
		}
	}
	for _, k := range []string{"properties.hardwareProfile.vmSize", "properties.userData",
		"properties.storageProfile.imageReference", "tags", "properties.osProfile.linuxConfiguration.ssh.publicKeys.0.keyData"} {
		if dig(b, strings.Split(k, ".")...) == nil {
			return "missing " + k
		}
	}
	if ir, _ := dig(b, "properties", "storageProfile", "imageReference").(map[string]interface{}); len(ir) != 1 {
		return "imageReference must hold exactly one of id, communityGalleryImageId"
	}
	if pip := dig(b, "properties", "networkProfile", "networkInterfaceConfigurations", "0", "properties",
		"ipConfigurations", "0", "properties", "publicIPAddressConfiguration"); pip != nil {
		if dig(pip, "name") != name+"-net" || dig(pip, "properties", "deleteOption") != "Delete" {
			return "publicIPAddressConfiguration must be {name: <vm>-net, properties: {deleteOption: Delete}}"
		}
	}
	if sp := dig(b, "properties", "securityProfile"); sp != nil {
		if dig(sp, "securityType") != "ConfidentialVM" || dig(sp, "uefiSettings", "vTpmEnabled") != true ||
			dig(b, "properties", "storageProfile", "osDisk", "managedDisk", "securityProfile", "securityEncryptionType") != "VMGuestStateOnly" {
			return "a confidential VM needs securityType ConfidentialVM, vTpmEnabled and a VMGuestStateOnly OS disk"
		}
	}
	return ""
}

// callType names the kind of a request, for faults and counters.
func callType(r *http.Request) string {
	p := r.URL.Path
	switch {
	case strings.HasSuffix(p, "/oauth2/v2.0/token"):
		return "token"
	case strings.HasSuffix(p, "/vmSizes"):
		return "sizes"
	case strings.Contains(p, "/operations/"):
		return "op"
	case strings.HasSuffix(p, "/Microsoft.Compute/virtualMachines"):
		return "list"
	case strings.Contains(p, "/virtualMachines/"):
		return "vm_" + strings.ToLower(r.Method)
	case strings.Contains(p, "/networkInterfaces/"):
		return "nic_" + strings.ToLower(r.Method)
	case strings.Contains(p, "/publicIPAddresses/"):
		return "pip_" + strings.ToLower(r.Method)
	case strings.Contains(p, "/disks/"):
		return "disk_" + strings.ToLower(r.Method)
	case strings.Contains(p, "/subnets/"):
		return "subnet_get"
	case strings.Contains(p, "/networkSecurityGroups/"):
		return "nsg_get"
	case strings.Contains(p, "/images/") || strings.Contains(p, "/communityGalleries/"):
		return "image_get"
	case strings.Contains(strings.ToLower(p), "/resourcegroups/"):
		return "rg_get"
	}
	return "other"
}

// AddFault arms a fault (see Fault).
func (f *FakeARM) AddFault(call string, status int, retryAfter string, reset bool, times int) *Fault {
	f.mu.Lock()
	defer f.mu.Unlock()
	ft := &Fault{Call: call, Status: status, RetryAfter: retryAfter, Reset: reset, Times: times}
	f.Faults = append(f.Faults, ft)
	return ft
}

// Storm answers every ARM request 429 + Retry-After: after seconds until d has passed, and
// records a violation for any request that arrives before a Retry-After it was given.
func (f *FakeARM) Storm(d time.Duration, after int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stormUntil = time.Now().Add(d)
	f.stormAfter = after
}

func (f *FakeARM) fault(w http.ResponseWriter, call string) bool {
	for _, ft := range f.Faults {
		if ft.Call != call || ft.Fired >= ft.Times {
			continue
		}
		ft.Fired++
		if ft.Reset && hangUp(w) {
			return true
		}
		if ft.RetryAfter != "" {
			w.Header().Set("Retry-After", ft.RetryAfter)
		}
		code := ft.Code
		if code == "" {
			code = "InternalServerError"
		}
		armErr(w, ft.Status, code, "injected fault ("+code+")")
		return true
	}
	return false
}

func (f *FakeARM) issue(w http.ResponseWriter, flow string, asString bool) {
	f.Tokens++
	f.TokensByFlow[flow]++
	tok := fmt.Sprintf("tok-%d", f.Tokens)
	f.tokenIssued[tok] = time.Now()
	noteSecret("an access token", tok+"\"")
	noteSecret("an access token", tok+" ")
	var exp interface{} = f.TokenTTL
	if asString {
		exp = fmt.Sprint(f.TokenTTL)
	}
	reply(w, 200, map[string]interface{}{"token_type": "Bearer", "expires_in": exp, "access_token": tok,
		"resource": "https://management.core.windows.net/"})
}

func (f *FakeARM) serveIMDS(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Requests = append(f.Requests, r.Method+" imds "+r.URL.Path)
	f.Calls["imds"]++
	if f.fault(w, "imds") {
		return
	}
	q := r.URL.Query()
	if r.URL.Path != "/metadata/identity/oauth2/token" || r.Method != "GET" || r.Header.Get("Metadata") != "true" ||
		q.Get("api-version") == "" || q.Get("resource") != "https://management.core.windows.net/" {
		reply(w, 400, map[string]string{"error": "invalid_request", "error_description": "bad IMDS token request"})
		return
	}
	if q.Get("client_id") != "" && q.Get("client_id") != armClient {
		reply(w, 400, map[string]string{"error": "invalid_request", "error_description": "Identity not found"})
		return
	}
	f.issue(w, "imds", true)
}

func (f *FakeARM) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	defer f.mu.Unlock()
	p := r.URL.Path
	if p == "/fake/inventory" { // for tests: what is left, no auth
		reply(w, 200, f.inventoryLocked())
		return
	}
	call := callType(r)
	f.Requests = append(f.Requests, r.Method+" "+p)
	f.Calls[call]++
	now := time.Now()
	if call != "token" {
		if now.Before(f.quietUntil) && now.Sub(f.quietSince) > 250*time.Millisecond {
			f.Violations = append(f.Violations, fmt.Sprintf("%s %s %v before the Retry-After ended",
				r.Method, p, f.quietUntil.Sub(now).Round(time.Millisecond)))
		}
		if now.Before(f.stormUntil) {
			f.quietSince = now
			f.quietUntil = now.Add(time.Duration(f.stormAfter) * time.Second)
			w.Header().Set("Retry-After", fmt.Sprint(f.stormAfter))
			armErr(w, 429, "TooManyRequests", "throttled (storm)")
			return
		}
	}
	if f.fault(w, call) {
		return
	}
	if r.Method == "POST" && p == "/"+armTenant+"/oauth2/v2.0/token" {
		r.Body = io.NopCloser(strings.NewReader(string(body)))
		r.ParseForm()
		fm := r.PostForm
		ok := fm.Get("client_id") == armClient && fm.Get("grant_type") == "client_credentials" &&
			strings.Contains(fm.Get("scope"), armScopeARM)
		flow := "secret"
		if a := fm.Get("client_assertion"); a != "" {
			flow = "assertion"
			f.Assertions = append(f.Assertions, a)
			noteSecret("a client assertion", a)
			ok = ok && fm.Get("client_assertion_type") == armAssertType && a == f.Assertion && fm.Get("client_secret") == ""
		} else {
			ok = ok && fm.Get("client_secret") == armSecret
		}
		if !ok {
			reply(w, 401, map[string]interface{}{"error": "invalid_client", "error_description": "AADSTS7000215: bad"})
			return
		}
		f.issue(w, flow, false)
		return
	}
	tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	issued, known := f.tokenIssued[tok]
	if !known || f.Revoked[tok] {
		armErr(w, 401, "InvalidAuthenticationToken", "no or bad token")
		return
	}
	if f.TokenTTL > 300 && now.Sub(issued) > time.Duration(f.TokenTTL-300)*time.Second+time.Second {
		f.StaleTokens++ // the daemon should have refreshed it by now
	}
	if r.URL.Query().Get("api-version") == "" {
		armErr(w, 400, "MissingApiVersionParameter", "api-version is required")
		return
	}
	rgp := "/subscriptions/" + armSub + "/resourceGroups/" + armRG + "/providers/"
	opURL := func(op string) string {
		return f.URL + "/subscriptions/" + armSub + "/providers/Microsoft.Compute/locations/" + armRegion +
			"/operations/" + op + "?api-version=2022-11-01"
	}
	switch {
	case r.Method == "GET" && p == "/subscriptions/"+armSub+"/providers/Microsoft.Compute/locations/"+armRegion+"/vmSizes":
		reply(w, 200, map[string]interface{}{"value": []map[string]interface{}{
			{"name": "Standard_DC4as_v5", "numberOfCores": 4, "memoryInMB": 16384, "maxDataDiskCount": 8},
			{"name": "Standard_DC2as_v5", "numberOfCores": 2, "memoryInMB": 8192, "maxDataDiskCount": 4},
			{"name": "Standard_D2as_v5", "numberOfCores": 2, "memoryInMB": 8192, "maxDataDiskCount": 4}}})
	case r.Method == "GET" && call == "rg_get":
		if p != "/subscriptions/"+armSub+"/resourcegroups/"+armRG {
			armErr(w, 404, "ResourceGroupNotFound", "Resource group '"+p[strings.LastIndex(p, "/")+1:]+"' could not be found.")
			return
		}
		reply(w, 200, map[string]interface{}{"id": p, "name": armRG, "location": armRegion})
	case r.Method == "GET" && (call == "subnet_get" || call == "nsg_get" || call == "image_get"):
		known := map[string]bool{armSubnet: true, armNSG: true, armImage: true, armImageDef: true, armManagedImage: true,
			"/subscriptions/" + armSub + "/providers/Microsoft.Compute/locations/" + armRegion + "/communityGalleries/cg-1/images/podvm": true}
		if !known[p] {
			code := map[string]string{"subnet_get": "NotFound", "nsg_get": "NotFound", "image_get": "GalleryImageNotFound"}[call]
			armErr(w, 404, code, "The resource "+p+" was not found.")
			return
		}
		reply(w, 200, map[string]interface{}{"id": p})
	case strings.HasPrefix(p, "/subscriptions/"+armSub+"/providers/Microsoft.Compute/locations/"+armRegion+"/operations/"):
		id := p[strings.LastIndex(p, "/")+1:]
		left, ok := f.ops[id]
		if !ok {
			armErr(w, 404, "NotFound", "no such operation")
			return
		}
		held := false
		if f.Hold != nil && strings.HasPrefix(id, "op-create-") {
			select {
			case <-f.Hold:
			default:
				held = true
			}
		}
		if left > 0 || held {
			if !held {
				f.ops[id] = left - 1
			}
			w.Header().Set("Retry-After", f.PollRetryAfter)
			reply(w, 200, map[string]string{"status": "InProgress"})
			return
		}
		if code := f.opFail[id]; code != "" {
			reply(w, 200, map[string]interface{}{"status": "Failed", "error": map[string]string{"code": code,
				"message": "injected failure of the operation"}})
			return
		}
		if vm := f.VMs[strings.TrimPrefix(id, "op-create-")]; vm != nil {
			vm.State = "Succeeded"
		}
		reply(w, 200, map[string]string{"status": "Succeeded"})
	case r.Method == "GET" && p == rgp+"Microsoft.Compute/virtualMachines":
		v := []map[string]interface{}{}
		names := make([]string, 0, len(f.VMs))
		for n := range f.VMs {
			names = append(names, n)
		}
		sort.Strings(names) // one page, in name order: tests can place a VM far down it
		for _, n := range names {
			v = append(v, map[string]interface{}{"name": n, "id": rgp + "Microsoft.Compute/virtualMachines/" + n, "tags": f.VMs[n].Tags})
		}
		reply(w, 200, map[string]interface{}{"value": v})
	case strings.HasPrefix(p, rgp+"Microsoft.Compute/virtualMachines/"):
		name := p[len(rgp+"Microsoft.Compute/virtualMachines/"):]
		id := rgp + "Microsoft.Compute/virtualMachines/" + name
		switch r.Method {
		case "PUT":
			var b map[string]interface{}
			if err := json.Unmarshal(body, &b); err != nil {
				armErr(w, 400, "InvalidRequestContent", err.Error())
				return
			}
			if e := validateVM(name, b); e != "" {
				armErr(w, 400, "InvalidParameter", e)
				return
			}
			dds, _ := dig(b, "properties", "storageProfile", "dataDisks").([]interface{})
			for i, dd := range dds {
				id, _ := dig(dd, "managedDisk", "id").(string)
				disk := f.DataDisks[id]
				switch {
				case dig(dd, "createOption") != "Attach" || dig(dd, "deleteOption") != "Detach" || dig(dd, "lun") != float64(i):
					armErr(w, 400, "InvalidParameter", fmt.Sprintf("dataDisks[%d] must be {createOption: Attach, deleteOption: Detach, lun: %d}", i, i))
					return
				case disk == nil:
					armErr(w, 404, "NotFound", "Disk "+id+" is not found")
					return
				case disk.State != "Unattached":
					armErr(w, 409, "AttachDiskWhileBeingDetached", "Disk "+id+" is "+disk.State)
					return
				}
			}
			for _, dd := range dds {
				disk := f.DataDisks[dig(dd, "managedDisk", "id").(string)]
				disk.State, disk.ManagedBy = "Attached", id
			}
			tags, _ := b["tags"].(map[string]interface{})
			pub := dig(b, "properties", "networkProfile", "networkInterfaceConfigurations", "0", "properties",
				"ipConfigurations", "0", "properties", "publicIPAddressConfiguration") != nil
			f.VMs[name] = &fakeVM{Body: b, Tags: tags, State: "Creating", PubIP: pub}
			f.NICs[name+"-net"] = true
			f.Disks[name+"-disk"] = true
			if pub {
				f.PIPs[name+"-net"] = true
			}
			f.nicNoIP[name+"-net"] = f.NICPollsNoIP
			f.Bodies[name] = body
			if ud, err := base64.StdEncoding.DecodeString(dig(b, "properties", "userData").(string)); err == nil {
				os.WriteFile(filepath.Join(f.fakeDir, name+".userdata"), ud, 0o600) // for the forwarder's certs
			}
			if f.OnCreate != nil {
				f.OnCreate(name)
			}
			op := "op-create-" + name
			f.ops[op] = f.PollsPerCreate
			if f.FailCreate != "" {
				f.opFail[op] = f.FailCreate
				f.VMs[name].State = "Failed"
			}
			w.Header().Set("Azure-AsyncOperation", opURL(op))
			if f.OpRetryAfter != "" {
				w.Header().Set("Retry-After", f.OpRetryAfter)
			}
			reply(w, 201, map[string]interface{}{"id": id, "properties": map[string]string{"provisioningState": "Creating"}})
		case "GET":
			vm := f.VMs[name]
			if vm == nil {
				armErr(w, 404, "ResourceNotFound", "no VM "+name)
				return
			}
			reply(w, 200, map[string]interface{}{"id": id, "name": name, "properties": map[string]interface{}{
				"provisioningState": vm.State, "networkProfile": map[string]interface{}{"networkInterfaces": []map[string]string{
					{"id": rgp + "Microsoft.Network/networkInterfaces/" + name + "-net"}}}}})
		case "DELETE":
			if f.VMs[name] == nil {
				w.WriteHeader(204)
				return
			}
			delete(f.VMs, name)
			if f.OnDelete != nil {
				f.OnDelete(name)
			}
			for _, disk := range f.DataDisks {
				if disk.ManagedBy == id {
					disk.State, disk.ManagedBy = "Unattached", ""
				}
			}
			if !f.KeepOnDelete { // deleteOption: Delete
				delete(f.NICs, name+"-net")
				delete(f.Disks, name+"-disk")
				delete(f.PIPs, name+"-net")
			}
			op := "op-delete-" + name
			f.ops[op] = 1
			delete(f.opFail, op)
			w.Header().Set("Azure-AsyncOperation", opURL(op))
			if f.OpRetryAfter != "" {
				w.Header().Set("Retry-After", f.OpRetryAfter)
			}
			if f.DeleteStatus != 0 {
				w.WriteHeader(f.DeleteStatus)
				return
			}
			w.WriteHeader(202)
		default:
			armErr(w, 405, "MethodNotAllowed", r.Method)
		}
	case strings.HasPrefix(p, rgp+"Microsoft.Network/networkInterfaces/"):
		name := p[len(rgp+"Microsoft.Network/networkInterfaces/"):]
		if !f.NICs[name] {
			armErr(w, 404, "NotFound", "no NIC "+name)
			return
		}
		if r.Method == "DELETE" {
			delete(f.NICs, name)
			w.WriteHeader(200)
			return
		}
		ip := f.nicIP
		if f.NICIPFor != nil {
			ip = f.NICIPFor(strings.TrimSuffix(name, "-net"))
		}
		if f.nicNoIP[name] > 0 {
			f.nicNoIP[name]--
			ip = ""
		}
		props := map[string]interface{}{}
		if ip != "" {
			props["privateIPAddress"] = ip
		}
		if f.PIPs[name] {
			props["publicIPAddress"] = map[string]string{"id": rgp + "Microsoft.Network/publicIPAddresses/" + name}
		}
		reply(w, 200, map[string]interface{}{"properties": map[string]interface{}{"ipConfigurations": []map[string]interface{}{
			{"name": "ip-config", "properties": props}}}})
	case strings.HasPrefix(p, rgp+"Microsoft.Network/publicIPAddresses/"):
		name := p[len(rgp+"Microsoft.Network/publicIPAddresses/"):]
		if !f.PIPs[name] {
			armErr(w, 404, "NotFound", "no public IP "+name)
			return
		}
		if r.Method == "DELETE" {
			delete(f.PIPs, name)
			w.WriteHeader(200)
			return
		}
		reply(w, 200, map[string]interface{}{"properties": map[string]string{"ipAddress": f.PublicIP}})
	case strings.Contains(p, "/providers/Microsoft.Compute/disks/") && strings.HasPrefix(p, "/subscriptions/"+armSub+"/resourceGroups/") &&
		(f.DataDisks[p] != nil || !strings.HasPrefix(p, rgp)): // a user's disk, not one of our OS disks
		disk := f.DataDisks[p]
		switch {
		case r.URL.Query().Get("api-version") != "2022-07-02":
			armErr(w, 400, "InvalidApiVersionParameter", "disks take api-version 2022-07-02")
		case disk == nil:
			armErr(w, 404, "ResourceNotFound", "The Resource '"+p+"' was not found.")
		case r.Method != "GET":
			armErr(w, 403, "AuthorizationFailed", "the daemon may read a user's disk, nothing else")
		default:
			v := map[string]interface{}{"id": p, "location": disk.Location,
				"properties": map[string]string{"diskState": disk.State}}
			if disk.ManagedBy != "" {
				v["managedBy"] = disk.ManagedBy
			}
			if len(disk.Zones) > 0 {
				v["zones"] = disk.Zones
			}
			reply(w, 200, v)
		}
	case strings.HasPrefix(p, rgp+"Microsoft.Compute/disks/"):
		name := p[len(rgp+"Microsoft.Compute/disks/"):]
		if !f.Disks[name] {
			armErr(w, 404, "NotFound", "no disk "+name)
			return
		}
		if r.Method == "DELETE" {
			delete(f.Disks, name)
			w.WriteHeader(200)
			return
		}
		reply(w, 200, map[string]interface{}{"name": name, "properties": map[string]string{"diskState": "Unattached"}})
	default:
		armErr(w, 404, "InvalidResourceType", "fake ARM has no "+r.Method+" "+p)
	}
}

type fakeDataDisk struct {
	Location  string
	Zones     []string
	State     string // Unattached, Attached, Reserved
	ManagedBy string // the VM's id while attached
}

// AddDataDisk puts a user's managed disk into the fake cloud; its id is returned.
func (f *FakeARM) AddDataDisk(rg, name, location string, zones ...string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := "/subscriptions/" + armSub + "/resourceGroups/" + rg + "/providers/Microsoft.Compute/disks/" + name
	f.DataDisks[id] = &fakeDataDisk{Location: location, Zones: zones, State: "Unattached"}
	return id
}

// AddVM puts a VM (with its NIC and disk) into the fake cloud as if made earlier.
func (f *FakeARM) AddVM(name string, tags map[string]interface{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.VMs[name] = &fakeVM{Tags: tags, State: "Succeeded"}
	f.NICs[name+"-net"] = true
	f.Disks[name+"-disk"] = true
}

func (f *FakeARM) inventoryLocked() map[string][]string {
	inv := map[string][]string{"vms": {}, "nics": {}, "disks": {}, "publicIPs": {}}
	for n := range f.VMs {
		inv["vms"] = append(inv["vms"], n)
	}
	for n := range f.NICs {
		inv["nics"] = append(inv["nics"], n)
	}
	for n := range f.Disks {
		inv["disks"] = append(inv["disks"], n)
	}
	for n := range f.PIPs {
		inv["publicIPs"] = append(inv["publicIPs"], n)
	}
	for _, v := range inv {
		sort.Strings(v)
	}
	return inv
}

// Inventory is what is left in the fake cloud.
func (f *FakeARM) Inventory() (vms, nics, disks int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.VMs), len(f.NICs), len(f.Disks) + len(f.PIPs)
}

// InventoryHTTP reads the inventory through the fake's endpoint, as an outside observer.
func (f *FakeARM) InventoryHTTP() (map[string][]string, error) {
	pool := x509.NewCertPool()
	pem, err := os.ReadFile(f.CAFile)
	if err != nil {
		return nil, err
	}
	pool.AppendCertsFromPEM(pem)
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := c.Get(f.URL + "/fake/inventory")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	inv := map[string][]string{}
	return inv, json.NewDecoder(resp.Body).Decode(&inv)
}

func (f *FakeARM) Count(call string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.Calls[call]
}

func scAzureLifecycle(t *T) {
	dirs := t.defaultDirs()
	if err := os.MkdirAll(dirs.FakeDir, 0o755); err != nil {
		t.Fatalf("%v", err)
	}
	arm, err := StartFakeARM(t.dir, dirs.FakeDir, "127.0.0.1")
	if err != nil {
		t.Fatalf("fake ARM: %v", err)
	}
	defer arm.Close()
	dirs.Azure = arm
	d := t.StartDaemonDirs(dirs)
	id := newSandboxID()
	ann := kataAnnotations("web", "default")
	ann[annVCPUs], ann[annMemory] = "4", "8192"
	if err := createWith(d, id, ann); err != nil {
		t.Fatalf("CreateVM: %s", describeErr(err))
	}
	if err := d.StartVM(id, optsStart); err != nil {
		t.Fatalf("StartVM: %s", describeErr(err))
	}
	vm := instanceName("web", id)
	if v, n, k := arm.Inventory(); v != 1 || n != 1 || k != 1 {
		t.Errorf("after StartVM the fake cloud holds %d VMs, %d NICs, %d disks", v, n, k)
	}
	arm.mu.Lock()
	b := arm.VMs[vm]
	arm.mu.Unlock()
	if b == nil {
		t.Fatalf("no VM %s in the fake cloud", vm)
	}
	if got := dig(b.Body, "properties", "hardwareProfile", "vmSize"); got != "Standard_DC4as_v5" {
		t.Errorf("vmSize %v, want Standard_DC4as_v5 (4 vCPUs, 8 GiB from the allow-list)", got)
	}
	if dig(b.Body, "properties", "securityProfile", "securityType") != "ConfidentialVM" ||
		dig(b.Body, "properties", "storageProfile", "osDisk", "managedDisk", "securityProfile", "securityEncryptionType") != "VMGuestStateOnly" {
		t.Errorf("not a confidential VM body: %v", b.Body["properties"])
	}
	for k, v := range map[string]string{"team": "peerpods", "env": "test", "peerpods-created-by": "cloud-api-adaptor",
		"peerpods-sandbox-id": id} {
		if b.Tags[k] != v {
			t.Errorf("tag %s = %v, want %s (tags %v)", k, b.Tags[k], v, b.Tags)
		}
	}
	vmid, err := d.GetInfo("web", "default", false, optsPlain)
	if err != nil || !strings.HasSuffix(vmid, "/virtualMachines/"+vm) {
		t.Errorf("GetInfo: %q %v", vmid, err)
	}
	// The agent link works through the relay (forwarder at the NIC's address).
	if _, err := agentCallRaw(filepath.Join(dirs.PodsDir, id, "agent.ttrpc"), "grpc.Health", "Check", nil, 10*time.Second, nil); err != nil {
		t.Errorf("Health/Check through the relay: %v", err)
	}
	if err := d.StopVM(id); err != nil {
		t.Fatalf("StopVM: %s", describeErr(err))
	}
	if v, n, k := arm.Inventory(); v != 0 || n != 0 || k != 0 {
		t.Errorf("after StopVM the fake cloud still holds %d VMs, %d NICs, %d disks", v, n, k)
	}
	log := string(mustReadFile(t, d.LogPath))
	for _, secret := range []string{armSecret, "tok-1", "Bearer"} {
		if strings.Contains(log, secret) {
			t.Errorf("the daemon log contains %q", secret)
		}
	}
}

func scAzureBadSecret(t *T) {
	dirs := t.defaultDirs()
	os.MkdirAll(dirs.FakeDir, 0o755)
	arm, err := StartFakeARM(t.dir, dirs.FakeDir, "127.0.0.1")
	if err != nil {
		t.Fatalf("fake ARM: %v", err)
	}
	defer arm.Close()
	dirs.Azure = arm
	t.env = []string{"AZURE_CLIENT_SECRET=wrong-secret"}
	d, err := t.spawnDaemon(dirs)
	if err != nil {
		t.Fatalf("%v", err)
	}
	if err := d.WaitExit(30 * time.Second); err != nil {
		t.Fatalf("the daemon did not stop on bad credentials: %v", err)
	}
	log := string(mustReadFile(t, d.LogPath))
	if d.exitCode != 1 || !strings.Contains(log, "invalid_client") || !strings.Contains(log, "AZURE_CLIENT_SECRET") {
		t.Errorf("exit %d, log:\n%s", d.exitCode, log)
	}
	if strings.Contains(log, "wrong-secret") {
		t.Errorf("the secret reached the log")
	}
}
