package main

// A fake Azure Resource Manager + Entra ID token endpoint over HTTPS on loopback (Go's
// net/http and crypto/tls: independent of the daemon's libcurl client). It behaves as the
// spec's part A says: client-secret token grant, the vmSizes listing, VM PUT that makes the
// NIC and OS disk as a side effect (deleteOption Delete) and answers 201 with an
// Azure-AsyncOperation to poll, VM/NIC GET, VM DELETE 202 + polling that removes the NIC and
// disk too, NIC/disk DELETE, 404 for what does not exist, ARM-style 400 for a VM body
// missing what part A.3 requires. The inventory (VMs, NICs, disks) is what tests assert on.

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

const (
	armSub    = "sub-1"
	armRG     = "rg-1"
	armRegion = "eastus"
	armSecret = "s3cret-value"
	armTenant = "tenant-1"
	armClient = "client-1"
	armSubnet = "/subscriptions/sub-1/resourceGroups/rg-1/providers/Microsoft.Network/virtualNetworks/v/subnets/s"
	armImage  = "/subscriptions/sub-1/resourceGroups/rg-1/providers/Microsoft.Compute/galleries/g/images/i/versions/1.0.0"
)

type fakeVM struct {
	Body  map[string]interface{}
	Polls int
	Tags  map[string]interface{}
}

type FakeARM struct {
	URL     string
	CAFile  string
	fakeDir string
	nicIP   string
	srv     *http.Server
	ln      net.Listener

	mu             sync.Mutex
	VMs            map[string]*fakeVM
	NICs           map[string]bool
	Disks          map[string]bool
	ops            map[string]int // operation id -> polls left before Succeeded
	Requests       []string       // "METHOD path"
	Tokens         int
	Bodies         map[string][]byte // VM name -> PUT body
	PollsPerCreate int
}

func StartFakeARM(dir, fakeDir, nicIP string) (*FakeARM, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "fake-arm"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	f := &FakeARM{fakeDir: fakeDir, nicIP: nicIP, VMs: map[string]*fakeVM{}, NICs: map[string]bool{},
		Disks: map[string]bool{}, ops: map[string]int{}, Bodies: map[string][]byte{}, PollsPerCreate: 2}
	f.CAFile = filepath.Join(dir, "arm-ca.pem")
	if err := os.WriteFile(f.CAFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	f.ln = ln
	f.URL = "https://" + ln.Addr().String()
	f.srv = &http.Server{Handler: http.HandlerFunc(f.serve)}
	tl := tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}})
	go f.srv.Serve(tl)
	return f, nil
}

func (f *FakeARM) Close() { f.srv.Close() }

// Env is what the daemon needs to use this fake.
func (f *FakeARM) Env() []string {
	return []string{
		"AZURE_ARM_ENDPOINT=" + f.URL, "AZURE_AUTHORITY_HOST=" + f.URL + "/", "AZURE_CA_BUNDLE=" + f.CAFile,
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

// validateVM checks a VM PUT body against spec part A.3; "" when acceptable.
func validateVM(name string, b map[string]interface{}) string {
	want := map[string]interface{}{
		"location":                                                                                                      armRegion,
		"properties.storageProfile.osDisk.name":                                                                         name + "-disk",
		"properties.storageProfile.osDisk.createOption":                                                                 "FromImage",
		"properties.storageProfile.osDisk.deleteOption":                                                                 "Delete",
		"properties.storageProfile.osDisk.managedDisk.storageAccountType":                                               "Premium_LRS",
		"properties.osProfile.computerName":                                                                             name,
		"properties.osProfile.adminUsername":                                                                            "peerpod",
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
		"properties.storageProfile.imageReference", "tags"} {
		if dig(b, strings.Split(k, ".")...) == nil {
			return "missing " + k
		}
	}
	return ""
}

func (f *FakeARM) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Requests = append(f.Requests, r.Method+" "+r.URL.Path)
	p := r.URL.Path
	if r.Method == "POST" && p == "/"+armTenant+"/oauth2/v2.0/token" {
		r.Body = io.NopCloser(strings.NewReader(string(body)))
		r.ParseForm()
		if r.PostForm.Get("client_secret") != armSecret || r.PostForm.Get("client_id") != armClient ||
			r.PostForm.Get("grant_type") != "client_credentials" ||
			!strings.Contains(r.PostForm.Get("scope"), "https://management.core.windows.net//.default") {
			reply(w, 401, map[string]interface{}{"error": "invalid_client", "error_description": "AADSTS7000215: bad"})
			return
		}
		f.Tokens++
		reply(w, 200, map[string]interface{}{"token_type": "Bearer", "expires_in": 3599,
			"access_token": fmt.Sprintf("tok-%d", f.Tokens)})
		return
	}
	if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer tok-") {
		armErr(w, 401, "InvalidAuthenticationToken", "no or bad token")
		return
	}
	if r.URL.Query().Get("api-version") == "" {
		armErr(w, 400, "MissingApiVersionParameter", "api-version is required")
		return
	}
	rgp := "/subscriptions/" + armSub + "/resourceGroups/" + armRG + "/providers/"
	switch {
	case r.Method == "GET" && p == "/subscriptions/"+armSub+"/providers/Microsoft.Compute/locations/"+armRegion+"/vmSizes":
		reply(w, 200, map[string]interface{}{"value": []map[string]interface{}{
			{"name": "Standard_DC4as_v5", "numberOfCores": 4, "memoryInMB": 16384, "maxDataDiskCount": 8},
			{"name": "Standard_DC2as_v5", "numberOfCores": 2, "memoryInMB": 8192, "maxDataDiskCount": 4},
			{"name": "Standard_D2as_v5", "numberOfCores": 2, "memoryInMB": 8192, "maxDataDiskCount": 4}}})
	case strings.HasPrefix(p, "/subscriptions/"+armSub+"/providers/Microsoft.Compute/locations/"+armRegion+"/operations/"):
		id := p[strings.LastIndex(p, "/")+1:]
		left, ok := f.ops[id]
		if !ok {
			armErr(w, 404, "NotFound", "no such operation")
			return
		}
		if left > 0 {
			f.ops[id] = left - 1
			w.Header().Set("Retry-After", "0")
			reply(w, 200, map[string]string{"status": "InProgress"})
			return
		}
		reply(w, 200, map[string]string{"status": "Succeeded"})
	case r.Method == "GET" && p == rgp+"Microsoft.Compute/virtualMachines":
		var v []map[string]interface{}
		for n, vm := range f.VMs {
			v = append(v, map[string]interface{}{"name": n, "id": rgp + "Microsoft.Compute/virtualMachines/" + n, "tags": vm.Tags})
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
			tags, _ := b["tags"].(map[string]interface{})
			f.VMs[name] = &fakeVM{Body: b, Tags: tags}
			f.NICs[name+"-net"] = true
			f.Disks[name+"-disk"] = true
			f.Bodies[name] = body
			if ud, err := base64.StdEncoding.DecodeString(dig(b, "properties", "userData").(string)); err == nil {
				os.WriteFile(filepath.Join(f.fakeDir, name+".userdata"), ud, 0o600) // for the forwarder's certs
			}
			op := "op-create-" + name
			f.ops[op] = f.PollsPerCreate
			w.Header().Set("Azure-AsyncOperation", f.URL+"/subscriptions/"+armSub+"/providers/Microsoft.Compute/locations/"+
				armRegion+"/operations/"+op+"?api-version=2022-11-01")
			reply(w, 201, map[string]interface{}{"id": id, "properties": map[string]string{"provisioningState": "Creating"}})
		case "GET":
			if f.VMs[name] == nil {
				armErr(w, 404, "ResourceNotFound", "no VM "+name)
				return
			}
			reply(w, 200, map[string]interface{}{"id": id, "name": name, "properties": map[string]interface{}{
				"provisioningState": "Succeeded", "networkProfile": map[string]interface{}{"networkInterfaces": []map[string]string{
					{"id": rgp + "Microsoft.Network/networkInterfaces/" + name + "-net"}}}}})
		case "DELETE":
			if f.VMs[name] == nil {
				w.WriteHeader(204)
				return
			}
			delete(f.VMs, name)
			delete(f.NICs, name+"-net") // deleteOption: Delete
			delete(f.Disks, name+"-disk")
			op := "op-delete-" + name
			f.ops[op] = 1
			w.Header().Set("Azure-AsyncOperation", f.URL+"/subscriptions/"+armSub+"/providers/Microsoft.Compute/locations/"+
				armRegion+"/operations/"+op+"?api-version=2022-11-01")
			w.WriteHeader(202)
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
		reply(w, 200, map[string]interface{}{"properties": map[string]interface{}{"ipConfigurations": []map[string]interface{}{
			{"name": "ip-config", "properties": map[string]string{"privateIPAddress": f.nicIP}}}}})
	case strings.HasPrefix(p, rgp+"Microsoft.Compute/disks/"):
		name := p[len(rgp+"Microsoft.Compute/disks/"):]
		if !f.Disks[name] {
			armErr(w, 404, "NotFound", "no disk "+name)
			return
		}
		delete(f.Disks, name)
		w.WriteHeader(200)
	default:
		armErr(w, 404, "InvalidResourceType", "fake ARM has no "+r.Method+" "+p)
	}
}

// Inventory is what is left in the fake cloud.
func (f *FakeARM) Inventory() (vms, nics, disks int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.VMs), len(f.NICs), len(f.Disks)
}

func azureScenarios() []scenario {
	return []scenario{
		{"azure_lifecycle", scAzureLifecycle},
		{"azure_bad_secret_stops_startup", scAzureBadSecret},
	}
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
