package main

// The simulated worker node: acceptance scenarios node_*, run only under tests/node/run.sh
// (CAA_E2E_NODE=1), which runs this program in a "node" network namespace with a private
// /run/netns. Each scenario builds, with iproute2:
//
//	node (this process, the daemon, the fake ARM + Entra ID on 127.0.0.1)
//	  underlay bridge u<tag> 192.168.80.1/24; default route via 192.168.80.254 (nobody)
//	  CNI bridge c<tag> 10.244.0.1/16 --veth-- <tag>-p<k>: a pod namespace as a bridge CNI
//	    leaves it (eth0, IP, MAC, default route via the bridge)
//	per pod VM, from the moment the fake cloud accepts its PUT until it accepts its DELETE:
//	  <tag>-v<slot>: the VM's host side, on the underlay at 192.168.80.(10+slot), where after
//	    a boot delay the stand-in forwarder + kata-agent (Go containerd/ttrpc, forwarder.go)
//	    listens on :15150 with the TLS certificate of the VM's user-data, and which builds
//	    the VXLAN mirror (mirror.go) of the VM's apf.json into
//	  <tag>-w<slot>: the VM's pod namespace, where the "workload" (a TCP echo) listens on
//	    the pod IP
//
// The kata shim is played by shimPod: kata's exact sequence (protocols.md 2.3), one
// connection per hypervisor call and one long-lived agent connection. The node's default
// route leads to an address nobody has: no packet leaves these namespaces. Everything is
// deleted at the end of each scenario.

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/containerd/ttrpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func nodeScenarios() []scenario {
	if os.Getenv("CAA_E2E_NODE") == "" {
		return nil
	}
	return []scenario{
		{"node_simple_pod", scNodeSimple},
		{"node_annotations", scNodeAnnotations},
		{"node_50_pods_and_limit", scNode50},
		{"node_restart_20_pods", scNodeRestart},
		{"node_rolling_update_live_traffic", scNodeRollingUpdate},
		{"node_pod_stopped_while_down", scNodePodStoppedWhileDown},
		{"node_shim_gone_while_running", scNodeShimGone},
		{"node_crash_200_lifecycles", scNodeCrash},
		{"node_cloud_faults", scNodeFaults},
		{"node_bad_input", scNodeBadInput},
		{"node_libvirt_pod", scNodeLibvirt},
		{"node_secrets_never_logged", func(t *T) { // last: reads what the others left
			scSecrets(t, []string{"the Azure client secret", "an access token", "the daemon's TLS client key",
				"a pod VM's TLS server key", "the agent policy", "the global initdata", "an initdata annotation"})
		}},
	}
}

const (
	nodeIP      = "192.168.80.1"
	nodeNowhere = "192.168.80.254"
	workPort    = 7777 // the workload's echo port in the VM pod namespace
)

// ---------------------------------------------------------------------------
// The node

type simVM struct {
	name   string
	slot   int
	ip     string
	hostNs string
	podNs  string
	hostIf string
	noBoot bool // the forwarder never comes up

	booted  chan struct{} // closed when the boot goroutine ended
	bootErr error
	fw      *Forwarder
	work    net.Listener
	podIP   string
	vni     int
}

type simNode struct {
	t         *T
	tag       string
	arm       *FakeARM
	dirs      Dirs
	bootDelay time.Duration

	mu      sync.Mutex
	vms     map[string]*simVM // live VMs by name
	slots   []bool
	bootErr []string
	pods    []*shimPod
	podSeq  int
	downs   sync.WaitGroup
	noBoot  map[string]bool // pod names whose VM never starts its forwarder
	udDir   string          // <vm>.userdata: what each VM received
	libvirt bool            // plain TCP forwarders; VMs appear with their cidata ISO
	stop    chan struct{}
	watched sync.WaitGroup
}

func newSimNode(t *T) *simNode {
	n := &simNode{t: t, tag: fmt.Sprintf("n%04d", time.Now().UnixNano()/1000%10000), vms: map[string]*simVM{},
		slots: make([]bool, 240), bootDelay: 150 * time.Millisecond, noBoot: map[string]bool{}}
	t.must("ip", "link", "add", "u"+n.tag, "type", "bridge")
	t.must("ip", "addr", "add", nodeIP+"/24", "dev", "u"+n.tag)
	t.must("ip", "link", "set", "u"+n.tag, "up")
	t.must("ip", "route", "add", "default", "via", nodeNowhere, "dev", "u"+n.tag)
	t.must("ip", "link", "add", "c"+n.tag, "type", "bridge")
	t.must("ip", "addr", "add", "10.244.0.1/16", "dev", "c"+n.tag)
	t.must("ip", "link", "set", "c"+n.tag, "up")

	n.dirs = t.defaultDirs()
	n.udDir = n.dirs.FakeDir
	n.stop = make(chan struct{})
	if err := os.MkdirAll(n.dirs.FakeDir, 0o755); err != nil {
		t.Fatalf("%v", err)
	}
	t.fwPort = 15150 // every VM serves its own forwarder
	if os.Getenv("CAA_NODE_PROVIDER") == "libvirt" || strings.HasPrefix(t.name, "node_libvirt") {
		// libvirt's test driver hands out 192.168.122.x: those VMs sit on the underlay too.
		n.libvirt = true
		n.dirs.Libvirt = true
		n.udDir = filepath.Join(t.dir, "vm-userdata")
		t.must("mkdir", "-p", n.udDir)
		t.must("ip", "addr", "add", "192.168.122.1/24", "dev", "u"+n.tag)
		return n
	}
	arm, err := StartFakeARM(t.dir, n.dirs.FakeDir, "")
	if err != nil {
		t.Fatalf("fake ARM: %v", err)
	}
	arm.OpRetryAfter = "0" // a quick cloud: the scenarios are about the node, not ARM's pace
	arm.NICIPFor = n.vmIP
	arm.OnCreate = n.vmCreated
	arm.OnDelete = n.vmDeleted
	n.arm = arm
	n.dirs.Azure = arm
	return n
}

// close tears the node down and keeps the logs and secrets for the secrets scenario.
func (n *simNode) close() {
	t := n.t
	close(n.stop)
	n.watched.Wait()
	t.killDaemons()
	if n.arm != nil {
		n.arm.Close()
	}
	n.mu.Lock()
	vms := make([]*simVM, 0, len(n.vms))
	for _, vm := range n.vms {
		vms = append(vms, vm)
	}
	n.vms = map[string]*simVM{}
	pods := n.pods
	n.mu.Unlock()
	for _, vm := range vms {
		n.powerOff(vm)
	}
	n.downs.Wait()
	for _, p := range pods {
		p.closeAgent()
		if p.netns != "" {
			sh("ip", "netns", "del", p.netns)
			sh("ip", "link", "del", p.hostIf)
		}
	}
	sh("ip", "route", "del", "default")
	sh("ip", "link", "del", "u"+n.tag)
	sh("ip", "link", "del", "c"+n.tag)

}

func (n *simNode) startDaemon(extra ...string) *Daemon {
	return n.t.StartDaemonDirs(n.dirs, extra...)
}

func (n *simNode) vmIP(vm string) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if v := n.vms[vm]; v != nil {
		return v.ip
	}
	return ""
}

// vmCreated runs under the fake cloud's lock: claim an address, boot in the background.
func (n *simNode) vmCreated(name string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.vms[name] != nil {
		return // a repeated PUT of a running VM
	}
	slot := -1
	for i, used := range n.slots {
		if !used {
			slot = i
			break
		}
	}
	if slot < 0 {
		n.bootErr = append(n.bootErr, name+": no free VM address")
		return
	}
	n.slots[slot] = true
	n.startVMLocked(name, slot, fmt.Sprintf("192.168.80.%d", 10+slot))
}

func (n *simNode) startVMLocked(name string, slot int, ip string) {
	vm := &simVM{name: name, slot: slot, ip: ip,
		hostNs: fmt.Sprintf("%s-v%d", n.tag, slot), podNs: fmt.Sprintf("%s-w%d", n.tag, slot),
		hostIf: fmt.Sprintf("v%s-%d", n.tag, slot), booted: make(chan struct{})}
	for pod := range n.noBoot {
		if strings.HasPrefix(name, "podvm-"+pod+"-") {
			vm.noBoot = true
		}
	}
	n.vms[name] = vm
	go n.boot(vm)
}

func (n *simNode) vmDeleted(name string) {
	n.mu.Lock()
	vm := n.vms[name]
	delete(n.vms, name)
	n.mu.Unlock()
	if vm != nil {
		n.powerOff(vm)
	}
}

func (n *simNode) powerOff(vm *simVM) {
	n.downs.Add(1)
	go func() {
		defer n.downs.Done()
		<-vm.booted
		if vm.fw != nil {
			vm.fw.Close()
		}
		if vm.work != nil {
			vm.work.Close()
		}
		sh("ip", "netns", "del", vm.hostNs)
		sh("ip", "netns", "del", vm.podNs)
		sh("ip", "link", "del", vm.hostIf)
		n.mu.Lock()
		if vm.slot >= 0 {
			n.slots[vm.slot] = false
		}
		n.mu.Unlock()
	}()
}

// boot is the pod VM coming up: its network, then (after the boot delay) what its
// agent-protocol-forwarder does with the user-data: the pod network mirror and the listener.
func (n *simNode) boot(vm *simVM) {
	defer close(vm.booted)
	fail := func(format string, args ...interface{}) {
		vm.bootErr = fmt.Errorf(format, args...)
		n.mu.Lock()
		n.bootErr = append(n.bootErr, vm.name+": "+vm.bootErr.Error())
		n.mu.Unlock()
	}
	for _, c := range [][]string{
		{"ip", "netns", "add", vm.hostNs},
		{"ip", "netns", "add", vm.podNs},
		{"ip", "-n", vm.hostNs, "link", "set", "lo", "up"},
		{"ip", "-n", vm.podNs, "link", "set", "lo", "up"},
		{"ip", "link", "add", vm.hostIf, "type", "veth", "peer", "name", "eth0", "netns", vm.hostNs},
		{"ip", "link", "set", vm.hostIf, "master", "u" + n.tag, "up"},
		{"ip", "-n", vm.hostNs, "addr", "add", vm.ip + "/24", "dev", "eth0"},
		{"ip", "-n", vm.hostNs, "link", "set", "eth0", "up"},
		{"ip", "-n", vm.hostNs, "route", "replace", "192.168.80.0/24", "dev", "eth0"}, // the node, on-link
	} {
		if _, err := sh(c...); err != nil {
			fail("%v", err)
			return
		}
	}
	time.Sleep(n.bootDelay) // the simulated boot, not a synchronisation
	if vm.noBoot {
		return
	}
	ud, err := os.ReadFile(filepath.Join(n.udDir, vm.name+".userdata"))
	if err != nil {
		fail("user-data: %v", err)
		return
	}
	files, err := parseCloudConfig(ud)
	if err != nil {
		fail("user-data: %v", err)
		return
	}
	var apfRaw []byte
	for _, f := range files {
		if f.Path == "/run/peerpod/apf.json" && f.Content != nil {
			apfRaw = []byte(*f.Content)
		}
	}
	var apf mirrorAPF
	if err := json.Unmarshal(apfRaw, &apf); err != nil {
		fail("apf.json: %v", err)
		return
	}
	var key apfConfig
	if json.Unmarshal(apfRaw, &key) == nil {
		notePEMKey("a pod VM's TLS server key", key.TLSServerKey)
	}
	if apf.PodNetwork != nil {
		if err := BuildMirror(apfRaw, nsPath(vm.hostNs), nsPath(vm.podNs)); err != nil {
			fail("%v", err)
			return
		}
		vm.podIP = strings.SplitN(apf.PodNetwork.PodIP, "/", 2)[0]
		vm.vni = apf.PodNetwork.VXLANID
		ln, err := listenIn(nsPath(vm.podNs), fmt.Sprintf("%s:%d", vm.podIP, workPort))
		if err != nil {
			fail("workload listener: %v", err)
			return
		}
		vm.work = ln
		banner := vm.podNs
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() {
					defer c.Close()
					c.SetDeadline(time.Now().Add(30 * time.Second))
					io.WriteString(c, banner+"\n")
					io.Copy(c, c)
				}()
			}
		}()
	}
	ln, err := listenIn(nsPath(vm.hostNs), vm.ip+":15150")
	if err != nil {
		fail("forwarder listener: %v", err)
		return
	}
	fw, err := StartForwarderOn(ln, n.udDir, !n.libvirt)
	if err != nil {
		fail("forwarder: %v", err)
		return
	}
	vm.fw = fw
}

func (n *simNode) vm(name string) *simVM {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.vms[name]
}

// waitBooted returns the running VM of that name once its boot has ended.
func (n *simNode) waitBooted(name string) *simVM {
	vm := n.vm(name)
	if vm == nil {
		n.t.Fatalf("no VM %s in the simulated cloud", name)
	}
	select {
	case <-vm.booted:
	case <-time.After(30 * time.Second):
		n.t.Fatalf("VM %s did not finish booting in 30 s", name)
	}
	if vm.bootErr != nil {
		n.t.Fatalf("VM %s: %v", name, vm.bootErr)
	}
	return vm
}

func (n *simNode) bootErrors() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.bootErr...)
}

// addPod makes a pod namespace the way a bridge CNI does.
func (n *simNode) addPod(name string) *shimPod {
	n.mu.Lock()
	k := n.podSeq
	n.podSeq++
	n.mu.Unlock()
	p := &shimPod{node: n, name: name, ns: "default", id: newSandboxID(),
		netns: fmt.Sprintf("%s-p%d", n.tag, k), hostIf: fmt.Sprintf("p%s-%d", n.tag, k),
		ip:  fmt.Sprintf("10.244.%d.%d", 1+k/200, 10+k%200),
		mac: fmt.Sprintf("0a:58:0a:f4:%02x:%02x", 1+k/200, 10+k%200)}
	p.ann = kataAnnotations(name, p.ns)
	p.vm = instanceName(name, p.id)
	n.mu.Lock()
	n.pods = append(n.pods, p)
	n.mu.Unlock()
	t := n.t
	t.must("ip", "netns", "add", p.netns)
	t.must("ip", "-n", p.netns, "link", "set", "lo", "up")
	t.must("ip", "link", "add", p.hostIf, "type", "veth", "peer", "name", "eth0", "netns", p.netns)
	t.must("ip", "link", "set", p.hostIf, "master", "c"+n.tag, "up")
	t.must("ip", "-n", p.netns, "link", "set", "eth0", "address", p.mac)
	t.must("ip", "-n", p.netns, "addr", "add", p.ip+"/16", "dev", "eth0")
	t.must("ip", "-n", p.netns, "link", "set", "eth0", "up")
	t.must("ip", "-n", p.netns, "route", "add", "default", "via", "10.244.0.1")
	return p
}

// removePod is the CNI DEL and the pod sandbox going: its namespace is deleted.
func (n *simNode) removePod(p *shimPod) {
	p.closeAgent()
	sh("ip", "netns", "del", p.netns)
	sh("ip", "link", "del", p.hostIf)
	n.mu.Lock()
	for i, q := range n.pods {
		if q == p {
			n.pods = append(n.pods[:i], n.pods[i+1:]...)
			break
		}
	}
	n.mu.Unlock()
}

// expectClean fails for anything a finished pod may have left: cloud resources, VM
// namespaces, tunnel devices, nftables rules, sandbox state, sockets.
func (n *simNode) expectClean(d *Daemon, pods []*shimPod, when string) {
	t := n.t
	if n.arm != nil && !waitFor(30*time.Second, func() bool { v, nics, disks := n.arm.Inventory(); return v+nics+disks == 0 }) {
		expectEmptyCloud(t, n.arm, when)
	}
	if n.libvirt && !waitFor(10*time.Second, func() bool { n.mu.Lock(); defer n.mu.Unlock(); return len(n.vms) == 0 }) {
		isos, _ := filepath.Glob(filepath.Join(n.dirs.FakeDir, "*.iso"))
		t.Errorf("%s libvirt VMs still have their cidata ISO: %v", when, isos)
	}
	n.downs.Wait()
	n.mu.Lock()
	var live []string
	for name := range n.vms {
		live = append(live, name)
	}
	n.mu.Unlock()
	if len(live) > 0 {
		t.Errorf("%s VMs still running in the simulated cloud: %v", when, live)
	}
	for _, p := range pods {
		if p.netns != "" && exists(nsPath(p.netns)) {
			if l := linkJSON(t, p.netns, "vxlan1"); l != nil {
				t.Errorf("%s %s: vxlan1 still in the pod namespace", when, p.name)
			}
			if q := qdiscs(p.netns, "eth0"); strings.Contains(q, "ingress") {
				t.Errorf("%s %s: ingress qdisc left on eth0", when, p.name)
			}
		}
		if p.sock != "" && exists(p.sock) {
			t.Errorf("%s %s: agent socket %s remains", when, p.name, p.sock)
		}
	}
	if r := nftRules(t); r != nil {
		t.Errorf("%s table peerpod has rules left: %v", when, r)
	}
	if d != nil {
		// A delete that failed is retried in the background (back-off from 1 s); its record
		// goes when the retry succeeds.
		waitFor(30*time.Second, func() bool { e, _ := os.ReadDir(d.Dirs.PodsDir); return len(e) == 0 })
		if e, _ := os.ReadDir(d.Dirs.PodsDir); len(e) != 0 {
			var names []string
			for _, x := range e {
				names = append(names, x.Name())
			}
			t.Errorf("%s the pods dir still holds %v", when, names)
		}
	}
	if out, _ := sh("ip", "-d", "-o", "link", "show", "type", "vxlan"); strings.TrimSpace(out) != "" {
		t.Errorf("%s VXLAN devices left in the node namespace: %s", when, out)
	}
}

// ---------------------------------------------------------------------------
// The kata shim

type shimPod struct {
	node     *simNode
	name, ns string
	id       string
	netns    string
	hostIf   string
	ip, mac  string
	ann      map[string]string
	policy   string // SetPolicy text ("" = none)
	vm       string
	sock     string
	amu      sync.Mutex
	agent    *ttrpc.Client
	waitDone chan error
	running  bool
}

const (
	kataAgentDial      = 30 * time.Second
	kataRemoteTimeout  = 300 * time.Second
	kataCreateCtr      = 60 * time.Second
	kataDefaultTimeout = 60 * time.Second
)

func (p *shimPod) closeAgent() {
	p.amu.Lock()
	defer p.amu.Unlock()
	if p.agent != nil {
		p.agent.Close()
		p.agent = nil
	}
}

// createVM is kata's CreateVM: the nine annotations and the pod's network namespace.
func (p *shimPod) createVM(d *Daemon) error {
	resp := &CreateVMResponse{}
	nsp := ""
	if p.netns != "" {
		nsp = nsPath(p.netns)
	}
	err := d.Call(hypervisorService, "CreateVM", &CreateVMRequest{Id: p.id, Annotations: p.ann,
		NetworkNamespacePath: nsp}, resp, optsPlain)
	if err == nil {
		if want := filepath.Join(d.Dirs.PodsDir, p.id, "agent.ttrpc"); resp.AgentSocketPath != want ||
			strings.Contains(resp.AgentSocketPath, ":") {
			return fmt.Errorf("CreateVM agentSocketPath %q, want %q", resp.AgentSocketPath, want)
		}
		p.sock = resp.AgentSocketPath
	}
	return err
}

func (p *shimPod) startVM(d *Daemon) error {
	return d.Call(hypervisorService, "StartVM", &StartVMRequest{Id: p.id}, &StartVMResponse{},
		callOpts{ServerTimeout: 600 * time.Second, ClientWait: 90 * time.Second})
}

func (p *shimPod) stopVM(d *Daemon) error {
	return d.Call(hypervisorService, "StopVM", &StopVMRequest{Id: p.id}, &StopVMResponse{}, optsPlain)
}

// dialAgent opens the shim's one long-lived agent connection.
func (p *shimPod) dialAgent() (*ttrpc.Client, error) {
	p.amu.Lock()
	defer p.amu.Unlock()
	if p.agent != nil {
		return p.agent, nil
	}
	c, err := net.DialTimeout("unix", p.sock, kataAgentDial)
	if err != nil {
		return nil, err
	}
	p.agent = ttrpc.NewClient(c)
	return p.agent, nil
}

func (p *shimPod) agentCall(method string, payload []byte, timeout time.Duration) ([]byte, error) {
	c, err := p.dialAgent()
	if err != nil {
		return nil, err
	}
	svc := "grpc.AgentService"
	if method == "Check" {
		svc = "grpc.Health"
	}
	return agentCallOn(c, svc, method, payload, timeout, nil)
}

// up runs kata's sandbox start: CreateVM, StartVM (fresh 600 s deadline), then on the agent
// connection Health/Check, SetPolicy (with a policy), CreateSandbox, and the first
// container: CreateContainer, StartContainer, WaitProcess (no deadline, left waiting).
func (p *shimPod) up(d *Daemon) error {
	if err := p.createVM(d); err != nil {
		return fmt.Errorf("CreateVM: %w", err)
	}
	if err := p.startVM(d); err != nil {
		return fmt.Errorf("StartVM: %w", err)
	}
	return p.agentUp()
}

func (p *shimPod) agentUp() error {
	if resp, err := p.agentCall("Check", nil, 30*time.Second); err != nil || !bytes.Equal(resp, []byte{0x08, 0x01}) {
		return fmt.Errorf("Health/Check: %x, %v", resp, err)
	}
	if p.policy != "" {
		if _, err := p.agentCall("SetPolicy", pbStr(1, p.policy), kataRemoteTimeout); err != nil {
			return fmt.Errorf("SetPolicy: %w", err)
		}
	}
	if _, err := p.agentCall("CreateSandbox", append(pbStr(1, p.name), pbStr(4, p.id)...), kataRemoteTimeout); err != nil {
		return fmt.Errorf("CreateSandbox: %w", err)
	}
	if _, err := p.agentCall("CreateContainer", fullCreateContainer(), kataCreateCtr); err != nil {
		return fmt.Errorf("CreateContainer: %w", err)
	}
	if _, err := p.agentCall("StartContainer", pbStr(1, "c0ffee"), kataDefaultTimeout); err != nil {
		return fmt.Errorf("StartContainer: %w", err)
	}
	c, err := p.dialAgent()
	if err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() {
		_, err := agentCallOn(c, "grpc.AgentService", "WaitProcess", append(pbStr(1, "c0ffee"), pbStr(2, "c0ffee")...), 0, nil)
		done <- err
	}()
	p.waitDone = done
	p.running = true
	return nil
}

// down is kata's pod stop: the container exits (WaitProcess returns), RemoveContainer,
// DestroySandbox, the agent connection closes, StopVM. StopVM runs whatever went wrong
// before it, as kata's cleanup does; the first error is returned.
func (p *shimPod) down(d *Daemon) error {
	var first error
	if p.running {
		first = p.agentDown()
		p.running = false
	}
	p.closeAgent()
	if err := p.stopVM(d); err != nil {
		return fmt.Errorf("StopVM: %w", err)
	}
	return first
}

func (p *shimPod) agentDown() error {
	if vm := p.node.vm(p.vm); vm != nil && vm.fw != nil {
		// The container exits once the agent is waiting on it (a release before would be lost).
		if !waitFor(10*time.Second, func() bool { return len(vm.fw.Calls("WaitProcess")) > 0 }) {
			return fmt.Errorf("WaitProcess never reached the agent")
		}
		vm.fw.Release()
		select {
		case err := <-p.waitDone:
			if err != nil {
				return fmt.Errorf("WaitProcess: %w", err)
			}
		case <-time.After(10 * time.Second):
			return fmt.Errorf("WaitProcess did not return 10 s after the container exited")
		}
	}
	if _, err := p.agentCall("RemoveContainer", pbStr(1, "c0ffee"), kataDefaultTimeout); err != nil {
		return fmt.Errorf("RemoveContainer: %w", err)
	}
	if _, err := p.agentCall("DestroySandbox", nil, kataDefaultTimeout); err != nil {
		return fmt.Errorf("DestroySandbox: %w", err)
	}
	return nil
}

// errText is an error for a report: the status code and message if it carries one.
func errText(err error) string {
	if err == nil {
		return "OK"
	}
	if inner := errors.Unwrap(err); inner != nil {
		if _, _, ok := errCode(inner); ok {
			return err.Error()[:len(err.Error())-len(inner.Error())] + describeErr(inner)
		}
	}
	return err.Error()
}

// eachPod runs fn for every pod at once and returns the errors in pod order.
func eachPod(pods []*shimPod, fn func(p *shimPod) error) []error {
	errs := make([]error, len(pods))
	var wg sync.WaitGroup
	for i, p := range pods {
		wg.Add(1)
		go func(i int, p *shimPod) { defer wg.Done(); errs[i] = fn(p) }(i, p)
	}
	wg.Wait()
	return errs
}

// expectAgentSequence checks what the pod's agent saw, in order.
func (p *shimPod) expectAgentSequence(t *T) {
	vm := p.node.vm(p.vm)
	if vm == nil || vm.fw == nil {
		t.Errorf("%s: no running VM %s", p.name, p.vm)
		return
	}
	// The WaitProcess call is in flight; wait until the agent has it.
	waitFor(5*time.Second, func() bool { return len(vm.fw.Calls("WaitProcess")) > 0 })
	var got []string
	for _, c := range vm.fw.Calls("") {
		got = append(got, c.Method)
	}
	// The first Check is the daemon's own, proving the link before StartVM returns.
	want := []string{"Check", "Check", "CreateSandbox", "CreateContainer", "StartContainer", "WaitProcess"}
	if p.policy != "" {
		want = []string{"Check", "Check", "SetPolicy", "CreateSandbox", "CreateContainer", "StartContainer", "WaitProcess"}
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("%s: the agent saw %v, want %v", p.name, got, want)
	}
	for _, c := range vm.fw.Calls("CreateSandbox") {
		if left := time.Until(c.Deadline); c.Deadline.IsZero() || left < 290*time.Second || left > 300*time.Second {
			t.Errorf("%s: CreateSandbox deadline %v away, want about 300 s", p.name, left.Round(time.Second))
		}
	}
	for _, c := range vm.fw.Calls("WaitProcess") {
		if !c.Deadline.IsZero() {
			t.Errorf("%s: WaitProcess reached the agent with a deadline", p.name)
		}
	}
	if p.policy != "" {
		for _, c := range vm.fw.Calls("SetPolicy") {
			if !bytes.Equal(c.Payload, pbStr(1, p.policy)) {
				t.Errorf("%s: SetPolicy payload changed on the way", p.name)
			}
		}
	}
}

// expectWorkload dials the pod IP from the node and checks the VM's workload answers.
func (p *shimPod) expectWorkload(t *T) {
	vm := p.node.vm(p.vm)
	if vm == nil {
		t.Errorf("%s: no running VM", p.name)
		return
	}
	if vm.podIP != p.ip {
		t.Errorf("%s: the VM mirrors pod IP %q, the CNI gave %q", p.name, vm.podIP, p.ip)
		return
	}
	if got := tcpCheck(t, "", fmt.Sprintf("%s:%d", p.ip, workPort), 64<<10); got != vm.podNs {
		t.Errorf("%s: the pod IP answered as %q, want the VM's pod namespace %q", p.name, got, vm.podNs)
	}
}

// ---------------------------------------------------------------------------
// 1. Simple pod

func scNodeSimple(t *T) {
	n := newSimNode(t)
	defer n.close()
	d := n.startDaemon()
	p := n.addPod("nginx")
	p.policy = "package agent_policy\ndefault AllowRequestsFailingPolicy := false # node-simple-policy-marker"
	noteSecret("the agent policy", p.policy)
	if err := p.up(d); err != nil {
		t.Fatalf("%s: %s", p.name, describeErr(err))
	}
	if !strings.HasPrefix(p.vm, "podvm-nginx-") || len(p.vm) != len("podvm-nginx-")+8 || p.vm[12:] != p.id[:8] {
		t.Errorf("VM name %q, want podvm-nginx-<first 8 of the sandbox id>", p.vm)
	}
	vm := n.waitBooted(p.vm)
	if got := n.vmIP(p.vm); got != vm.ip {
		t.Errorf("VM address %q", got)
	}
	p.expectAgentSequence(t)
	p.expectWorkload(t)
	if dial := vm.fw.Dialed(); dial[vm.ip] != 1 || len(dial) != 1 {
		t.Errorf("the forwarder was dialed %v, want once at %s", dial, vm.ip)
	}
	m := scrape(t, 8000) // PROBE_PORT's default; this node namespace is the scenario's own
	expectSamples(t, m, "with the pod running", map[string]float64{
		`caa_sandboxes{phase="running"}`: 1, "caa_tunnels": 1, "caa_agent_links": 1, `caa_vm_creates_total{result="ok"}`: 1,
	})
	if m[`caa_cloud_requests_total{code="2xx"}`] < 3 {
		t.Errorf("caa_cloud_requests_total{code=\"2xx\"} = %v after a VM create", m[`caa_cloud_requests_total{code="2xx"}`])
	}
	if vmid, err := d.GetInfo(p.name, p.ns, false, optsPlain); err != nil || !strings.HasSuffix(vmid, "/"+p.vm) {
		t.Errorf("GetInfo = %q, %s; want the VM's id", vmid, describeErr(err))
	}
	if err := p.down(d); err != nil {
		t.Fatalf("%s", describeErr(err))
	}
	if exists(p.sock) {
		t.Errorf("agent socket remains after StopVM")
	}
	n.expectClean(d, []*shimPod{p}, "after the pod was deleted")
	if errs := n.bootErrors(); len(errs) > 0 {
		t.Errorf("pod VM boot errors: %v", errs)
	}
}

// ---------------------------------------------------------------------------
// 2. Annotations

func scNodeAnnotations(t *T) {
	n := newSimNode(t)
	defer n.close()
	def := mustReadFile(t, "tests/data/initdata/default.toml")
	pod1 := mustReadFile(t, "tests/data/initdata/pod1.toml")
	noteSecret("the global initdata", strings.TrimSpace(string(def)))
	noteSecret("an initdata annotation", strings.TrimSpace(string(pod1)))
	var gz bytes.Buffer
	if err := gzipTo(&gz, def); err != nil {
		t.Fatalf("%v", err)
	}
	// INITDATA as base64 of the gzip'd file, one of the two forms the docs give.
	d := n.startDaemon("-initdata", base64.StdEncoding.EncodeToString(gz.Bytes()))

	type pcase struct {
		name    string
		set     map[string]string
		size    string // vmSize the cloud must get
		image   string // image reference id
		initTOM []byte
		errWant string // CreateVM/StartVM must fail with a message containing this
	}
	cases := []pcase{
		{name: "allowed-type", set: map[string]string{annMachineType: "Standard_DC4as_v5"}, size: "Standard_DC4as_v5",
			image: armImage, initTOM: def},
		{name: "refused-type", set: map[string]string{annMachineType: "Standard_D2as_v5"},
			errWant: "AZURE_INSTANCE_SIZES"},
		{name: "cpu-mem", set: map[string]string{annVCPUs: "3", annMemory: "8192"}, size: "Standard_DC4as_v5",
			image: armImage, initTOM: def},
		{name: "small", set: map[string]string{annVCPUs: "1", annMemory: "1024"}, size: "Standard_DC2as_v5",
			image: armImage, initTOM: def},
		{name: "image-override", set: map[string]string{annImage: armImageDef}, size: "Standard_DC2as_v5",
			image: armImageDef, initTOM: def},
		{name: "initdata-annotation", set: map[string]string{annInitdata: string(pod1)}, size: "Standard_DC2as_v5",
			image: armImage, initTOM: pod1},
	}
	for _, c := range cases {
		p := n.addPod(c.name)
		for k, v := range c.set {
			p.ann[k] = v
		}
		puts := n.arm.Count("vm_put")
		err := p.up(d)
		if c.errWant != "" {
			code, msg, _ := errCode(errors.Unwrap(err))
			if err == nil || code <= 0 || !strings.Contains(msg, c.errWant) {
				t.Errorf("%s: %s; want an error naming %s", c.name, errText(err), c.errWant)
			}
			if got := n.arm.Count("vm_put") - puts; got != 0 {
				t.Errorf("%s: %d VM PUTs for a refused pod", c.name, got)
			}
			if err := p.stopVM(d); err != nil { // kata's cleanup of a failed start
				t.Errorf("%s: StopVM after the failure: %s", c.name, describeErr(err))
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %s", c.name, errText(err))
			continue
		}
		b := vmBody(t, n.arm, p.vm)
		if got := dig(b, "properties", "hardwareProfile", "vmSize"); got != c.size {
			t.Errorf("%s: vmSize %v, want %s", c.name, got, c.size)
		}
		if got := dig(b, "properties", "storageProfile", "imageReference", "id"); got != c.image {
			t.Errorf("%s: image %v, want %s", c.name, got, c.image)
		}
		// What the pod VM reads: the initdata file of its user-data, gunzipped.
		files := vmDocument(t, d, p.vm)
		if f := files["/run/peerpod/initdata"]; f == nil {
			t.Errorf("%s: no initdata in the VM's user-data", c.name)
		} else if plain, err := gunzipB64(*f); err != nil || !bytes.Equal(plain, c.initTOM) {
			t.Errorf("%s: the VM's initdata is not the expected TOML (err %v, %d bytes)", c.name, err, len(plain))
		}
		n.waitBooted(p.vm)
		p.expectWorkload(t)
		if err := p.down(d); err != nil {
			t.Errorf("%s: %s", c.name, errText(err))
		}
	}
	// INITDATA in the other documented form, base64 of the plain file, on a restarted daemon.
	d.Kill()
	d = n.startDaemon("-initdata", base64.StdEncoding.EncodeToString(def))
	p := n.addPod("plain-global")
	if err := p.up(d); err != nil {
		t.Fatalf("plain-global: %s", errText(err))
	}
	if f := vmDocument(t, d, p.vm)["/run/peerpod/initdata"]; f == nil {
		t.Errorf("plain-global: no initdata in the VM's user-data")
	} else if plain, err := gunzipB64(*f); err != nil || !bytes.Equal(plain, def) {
		t.Errorf("plain-global: the VM's initdata is not the global TOML (err %v, %d bytes)", err, len(plain))
	}
	if err := p.down(d); err != nil {
		t.Errorf("plain-global: %s", errText(err))
	}
	n.expectClean(d, n.pods, "after every pod was deleted")
}

// ---------------------------------------------------------------------------
// 3. 50 pods at once, the 51st refused

func scNode50(t *T) {
	n := newSimNode(t)
	defer n.close()
	const max = 50
	n.arm.Latency = 30 * time.Millisecond // every ARM answer; the creates overlap instead of queueing
	d := n.startDaemon("-peerpods-limit-per-node", fmt.Sprint(max))
	pods := make([]*shimPod, max)
	var wg sync.WaitGroup
	for i := range pods {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			pods[i] = n.addPod(fmt.Sprintf("web-%d", i))
		}(i)
	}
	wg.Wait()
	began := time.Now()
	errs := eachPod(pods, func(p *shimPod) error { return p.up(d) })
	t.Logf("%d pods Running after %v", max, time.Since(began).Round(time.Millisecond))
	for i, err := range errs {
		if err != nil {
			t.Errorf("%s: %s", pods[i].name, errText(err))
		}
	}
	if t.Failed() {
		return
	}
	vnis := map[int]string{}
	for _, p := range pods {
		vm := n.waitBooted(p.vm)
		if other, dup := vnis[vm.vni]; dup || vm.vni < 555000 {
			t.Errorf("%s: VNI %d (also %q)", p.name, vm.vni, other)
		}
		vnis[vm.vni] = p.name
		l := linkJSON(t, p.netns, "vxlan1")
		if info := vxlanInfo(l); info == nil || int(info["id"].(float64)) != vm.vni {
			t.Errorf("%s: vxlan1 in the pod namespace %v, want VNI %d", p.name, info, vm.vni)
		}
	}
	for _, p := range pods {
		wg.Add(1)
		go func(p *shimPod) { defer wg.Done(); p.expectWorkload(t) }(p)
	}
	wg.Wait()

	extra := n.addPod("web-over-limit")
	puts := n.arm.Count("vm_put")
	err := extra.createVM(d)
	expectCode(t, "CreateVM of pod 51", err, 8, msgContains("PEERPODS_LIMIT_PER_NODE"), `naming PEERPODS_LIMIT_PER_NODE`)
	if exists(filepath.Join(d.Dirs.PodsDir, extra.id)) {
		t.Errorf("the refused pod left its sandbox dir")
	}
	if err := extra.stopVM(d); err != nil {
		t.Errorf("StopVM of the refused pod: %s", describeErr(err))
	}
	if n.arm.Count("vm_put") != puts {
		t.Errorf("the refused pod made a VM")
	}
	if v, _, _ := n.arm.Inventory(); v != max {
		t.Errorf("%d VMs in the cloud, want %d", v, max)
	}
	errs = eachPod(pods, func(p *shimPod) error { return p.down(d) })
	for i, err := range errs {
		if err != nil {
			t.Errorf("%s: %s", pods[i].name, errText(err))
		}
	}
	n.expectClean(d, append(pods, extra), "after all pods were deleted")
	if errs := n.bootErrors(); len(errs) > 0 {
		t.Errorf("pod VM boot errors: %v", errs)
	}
}

// upPods adds count pods named <prefix>-<i> and takes them all through kata's start at once;
// the scenario ends if one does not come up.
func (n *simNode) upPods(d *Daemon, prefix string, count int) []*shimPod {
	pods := make([]*shimPod, count)
	for i := range pods {
		pods[i] = n.addPod(fmt.Sprintf("%s-%d", prefix, i))
	}
	for i, err := range eachPod(pods, func(p *shimPod) error { return p.up(d) }) {
		if err != nil {
			n.t.Fatalf("%s: %s", pods[i].name, errText(err))
		}
	}
	return pods
}

// ---------------------------------------------------------------------------
// 4. Restart with 20 running pods: SIGTERM, then kill -9

func scNodeRestart(t *T) {
	n := newSimNode(t)
	defer n.close()
	const count = 20
	d := n.startDaemon("-peerpods-limit-per-node", fmt.Sprint(count))
	pods := n.upPods(d, "keep", count)
	var wg sync.WaitGroup
	puts := n.arm.Count("vm_put")
	for round, how := range []string{"SIGTERM", "kill -9"} {
		if how == "SIGTERM" {
			sigtermExit(t, d, 10*time.Second)
		} else {
			d.Kill()
		}
		d = n.startDaemon("-peerpods-limit-per-node", fmt.Sprint(count))
		for _, p := range pods {
			wg.Add(1)
			go func(p *shimPod) {
				defer wg.Done()
				// The shim's connection may have dropped with the daemon: one new dial, then it works.
				if _, err := p.agentCall("Check", nil, 30*time.Second); err != nil {
					p.closeAgent()
					if _, err := p.agentCall("Check", nil, 30*time.Second); err != nil {
						t.Errorf("after %s: %s: Health/Check on a new connection to the same socket: %v", how, p.name, err)
						return
					}
				}
				if _, err := p.agentCall("StatsContainer", pbStr(1, "c0ffee"), kataDefaultTimeout); err != nil {
					t.Errorf("after %s: %s: StatsContainer: %v", how, p.name, err)
				}
				p.expectWorkload(t)
			}(p)
		}
		wg.Wait()
		if got := n.arm.Count("vm_put"); got != puts {
			t.Errorf("after %s (round %d): %d VM PUTs, want none", how, round+1, got-puts)
		}
		if v, _, _ := n.arm.Inventory(); v != count {
			t.Errorf("after %s: %d VMs, want %d", how, v, count)
		}
		if t.Failed() {
			return
		}
	}
	for _, p := range pods {
		wg.Add(1)
		go func(p *shimPod) {
			defer wg.Done()
			p.running = false // the WaitProcess of the first connection went with it
			if err := p.down(d); err != nil {
				t.Errorf("%s: %s", p.name, errText(err))
			}
		}(p)
	}
	wg.Wait()
	n.expectClean(d, pods, "after all pods were deleted")
}

// ---------------------------------------------------------------------------
// 4b. A rolling update of the DaemonSet (old daemon stopped, then the new one started) while
// every pod has agent calls in flight and TCP traffic through its tunnel.

// agentTraffic is one shim-like caller: Health/Check in a loop on one connection to the pod's
// agent socket, dialled again whenever it breaks.
type agentTraffic struct {
	mu         sync.Mutex
	ok         []time.Time
	failures   map[string]int
	unexpected []string
}

func (a *agentTraffic) okSince(t time.Time) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, at := range a.ok {
		if !at.Before(t) {
			n++
		}
	}
	return n
}

// expectedLoss says whether err is how a call may fail while the daemon is replaced: the
// connection breaks or cannot be made, or the relay answers Unavailable. A call that hangs to
// its deadline, or any other answer, is not.
func expectedLoss(err error) (string, bool) {
	if st, ok := status.FromError(err); ok && st.Code() == codes.Unavailable {
		return "code 14", true
	}
	msg := err.Error()
	for _, s := range []string{"ttrpc: closed", "EOF", "connection reset", "broken pipe", "connection refused",
		"no such file or directory"} {
		if strings.Contains(msg, s) {
			return s, true
		}
	}
	return msg, false
}

func runAgentTraffic(p *shimPod, a *agentTraffic, stop <-chan struct{}) {
	var c *ttrpc.Client
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	for {
		select {
		case <-stop:
			return
		default:
		}
		var err error
		if c == nil {
			var conn net.Conn
			if conn, err = net.DialTimeout("unix", p.sock, 2*time.Second); err == nil {
				c = ttrpc.NewClient(conn)
			}
		}
		var resp []byte
		if err == nil {
			resp, err = agentCallOn(c, "grpc.Health", "Check", nil, 2*time.Second, nil)
		}
		a.mu.Lock()
		switch {
		case err == nil && bytes.Equal(resp, []byte{0x08, 0x01}):
			a.ok = append(a.ok, time.Now())
		case err == nil:
			a.unexpected = append(a.unexpected, fmt.Sprintf("Health/Check answered %x", resp))
		default:
			kind, ok := expectedLoss(err)
			if ok {
				a.failures[kind]++
			} else {
				a.unexpected = append(a.unexpected, kind)
			}
			if c != nil {
				c.Close()
				c = nil
			}
		}
		a.mu.Unlock()
		if err != nil {
			time.Sleep(10 * time.Millisecond) // pacing the redial, as a shim's retry does
		}
	}
}

// runEchoes keeps one TCP connection to the pod's workload through the tunnel and echoes 1 KiB
// every 10 ms; it reports the first failure and the longest wait for an echo.
func runEchoes(addr string, stop <-chan struct{}, longest *time.Duration) error {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(60 * time.Second))
	for one := make([]byte, 1); one[0] != '\n'; { // the workload's banner line
		if _, err := c.Read(one); err != nil {
			return fmt.Errorf("banner: %v", err)
		}
	}
	msg, got := make([]byte, 1024), make([]byte, 1024)
	for i := 0; ; i++ {
		select {
		case <-stop:
			return nil
		case <-time.After(10 * time.Millisecond):
		}
		for j := range msg {
			msg[j] = byte(i + j)
		}
		began := time.Now()
		if _, err := c.Write(msg); err != nil {
			return fmt.Errorf("echo %d: %v", i, err)
		}
		if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, msg) {
			return fmt.Errorf("echo %d: %v (bytes equal %v)", i, err, bytes.Equal(got, msg))
		}
		if d := time.Since(began); d > *longest {
			*longest = d
		}
	}
}

func scNodeRollingUpdate(t *T) {
	n := newSimNode(t)
	defer n.close()
	const count = 4
	d := n.startDaemon("-peerpods-limit-per-node", fmt.Sprint(count))
	pods := n.upPods(d, "live", count)
	puts := n.arm.Count("vm_put")
	stop := make(chan struct{})
	var wg sync.WaitGroup
	traffic := make([]*agentTraffic, count)
	echoErr := make([]error, count)
	echoLongest := make([]time.Duration, count)
	for i, p := range pods {
		traffic[i] = &agentTraffic{failures: map[string]int{}}
		wg.Add(2)
		go func(i int, p *shimPod) { defer wg.Done(); runAgentTraffic(p, traffic[i], stop) }(i, p)
		go func(i int, p *shimPod) {
			defer wg.Done()
			echoErr[i] = runEchoes(fmt.Sprintf("%s:%d", p.ip, workPort), stop, &echoLongest[i])
		}(i, p)
	}
	flowing := func(since time.Time) bool {
		for _, a := range traffic {
			if a.okSince(since) < 20 {
				return false
			}
		}
		return true
	}
	began := time.Now()
	if !waitFor(10*time.Second, func() bool { return flowing(began) }) {
		close(stop)
		wg.Wait()
		t.Fatalf("agent traffic did not get going through the first daemon")
	}

	stopped := time.Now()
	sigtermExit(t, d, 10*time.Second) // the DaemonSet's RollingUpdate: the old pod goes first
	exited := time.Now()
	d = n.startDaemon("-peerpods-limit-per-node", fmt.Sprint(count))
	ready := time.Now()
	back := waitFor(30*time.Second, func() bool { return flowing(ready) })
	close(stop)
	wg.Wait()
	if !back {
		t.Errorf("30 s after the new daemon was ready, not every pod's agent calls succeeded again")
	}
	t.Logf("traffic flowed %v before the old daemon got SIGTERM; the new one was ready %v after the old one exited",
		stopped.Sub(began).Round(time.Millisecond), ready.Sub(exited).Round(time.Millisecond))
	for i, a := range traffic {
		var gap time.Duration
		for j := 1; j < len(a.ok); j++ {
			if g := a.ok[j].Sub(a.ok[j-1]); g > gap {
				gap = g
			}
		}
		t.Logf("%s: %d calls answered, longest gap %v, failures %v", pods[i].name, len(a.ok),
			gap.Round(time.Millisecond), a.failures)
		for _, u := range a.unexpected {
			t.Errorf("%s: an agent call failed in a way a shim would not expect: %s", pods[i].name, u)
		}
		if limit := ready.Sub(stopped) + 5*time.Second; gap > limit {
			t.Errorf("%s: agent calls stopped for %v, more than the daemon's restart plus 5 s (%v)", pods[i].name,
				gap.Round(time.Millisecond), limit.Round(time.Millisecond))
		}
		if echoErr[i] != nil {
			t.Errorf("%s: TCP traffic through the tunnel broke while the daemon was replaced: %v", pods[i].name, echoErr[i])
		} else if echoLongest[i] > 2*time.Second {
			t.Errorf("%s: an echo through the tunnel waited %v", pods[i].name, echoLongest[i])
		}
	}
	if got := n.arm.Count("vm_put"); got != puts {
		t.Errorf("the update made %d VM PUTs, want none", got-puts)
	}
	if v, _, _ := n.arm.Inventory(); v != count {
		t.Errorf("after the update: %d VMs, want %d", v, count)
	}
	for _, p := range pods {
		p.running = false // the WaitProcess of the first connection went with the old daemon
		p.closeAgent()
	}
	for i, err := range eachPod(pods, func(p *shimPod) error { return p.down(d) }) {
		if err != nil {
			t.Errorf("%s: %s", pods[i].name, errText(err))
		}
	}
	n.expectClean(d, pods, "after all pods were deleted")
}

// A pod sandbox stopped while no daemon runs (kata's StopVM is lost: the socket is not
// there): containerd still removes the pod's network namespace. The next daemon deletes that
// sandbox's VM and keeps the pod beside it, whose namespace is still there, running.
func scNodePodStoppedWhileDown(t *T) {
	n := newSimNode(t)
	defer n.close()
	d := n.startDaemon("-peerpods-limit-per-node", "2")
	pods := n.upPods(d, "down", 2)
	gone, kept := pods[0], pods[1]
	d.Kill()
	n.removePod(gone) // CNI DEL, the namespace removed; the StopVM finds no daemon
	if err := gone.stopVM(d); err == nil {
		t.Fatalf("StopVM reached a daemon that was killed")
	}
	d = n.startDaemon("-peerpods-limit-per-node", "2")
	if !waitFor(30*time.Second, func() bool { v, nics, disks := n.arm.Inventory(); return v+nics+disks == 3 }) {
		v, nics, disks := n.arm.Inventory()
		t.Errorf("after the restart: %d VMs, %d NICs, %d disks; want the kept pod's 1 + 1 + 1", v, nics, disks)
	}
	// The records go after the cloud resources: wait for them, too.
	if !waitFor(10*time.Second, func() bool { return !exists(filepath.Join(d.Dirs.PodsDir, gone.id)) }) {
		t.Errorf("the stopped sandbox's records remain: %q", listTree(filepath.Join(d.Dirs.PodsDir, gone.id)))
	}
	if !strings.Contains(string(mustReadFile(t, d.LogPath)), "sandbox "+gone.id+": its pod's network namespace is gone") {
		t.Errorf("no log line says why the stopped sandbox's VM was deleted")
	}
	kept.closeAgent()
	kept.running = false // the WaitProcess of the first connection went with the old daemon
	n.expectKeptThenClean(d, kept, pods)
}

// A kata shim that dies while the daemon runs: containerd removes the pod's namespace, no
// StopVM comes. The GC, finding the namespace gone in two passes in a row, deletes that
// sandbox's VM; the pod beside it keeps running.
func scNodeShimGone(t *T) {
	n := newSimNode(t)
	defer n.close()
	d := n.startDaemon("-peerpods-limit-per-node", "2", "-gc-interval", "1s")
	pods := n.upPods(d, "shim", 2)
	gone, kept := pods[0], pods[1]
	removed := time.Now()
	n.removePod(gone)
	if !waitFor(20*time.Second, func() bool { v, nics, disks := n.arm.Inventory(); return v+nics+disks == 3 }) {
		v, nics, disks := n.arm.Inventory()
		t.Fatalf("20 s after the namespace went: %d VMs, %d NICs, %d disks; want the kept pod's 1 + 1 + 1", v, nics, disks)
	}
	if took := time.Since(removed); took < time.Second {
		t.Errorf("the VM went %v after its namespace: sooner than one GC interval (a normal StopVM could be overtaken)", took)
	}
	if !waitFor(10*time.Second, func() bool { return !exists(filepath.Join(d.Dirs.PodsDir, gone.id)) }) {
		t.Errorf("the gone sandbox's records remain: %q", listTree(filepath.Join(d.Dirs.PodsDir, gone.id)))
	}
	if !strings.Contains(string(mustReadFile(t, d.LogPath)), "sandbox "+gone.id+": its pod's network namespace has been gone") {
		t.Errorf("no log line says why the VM was deleted")
	}
	n.expectKeptThenClean(d, kept, pods)
}

// expectKeptThenClean: the pod whose namespace is still there kept its agent and its tunnel;
// once it is deleted too, nothing of either pod is left.
func (n *simNode) expectKeptThenClean(d *Daemon, kept *shimPod, pods []*shimPod) {
	t := n.t
	if _, err := kept.agentCall("Check", nil, 30*time.Second); err != nil {
		t.Errorf("%s: the pod whose namespace is still there lost its agent: %v", kept.name, err)
	}
	kept.expectWorkload(t)
	if err := kept.down(d); err != nil {
		t.Errorf("%s: %s", kept.name, errText(err))
	}
	n.expectClean(d, pods, "after the kept pod was deleted")
}

// ---------------------------------------------------------------------------
// 5. kill -9 at seeded random points during 200 lifecycles

func scNodeCrash(t *T) {
	n := newSimNode(t)
	defer n.close()
	n.bootDelay = 20 * time.Millisecond
	seed := time.Now().UnixNano()
	if s := os.Getenv("CAA_NODE_SEED"); s != "" {
		fmt.Sscan(s, &seed)
	}
	t.Logf("seed %d (CAA_NODE_SEED=%d reproduces the kill points)", seed, seed)
	rng := rand.New(rand.NewSource(seed))
	const total, workers = 200, 6

	var dmu sync.Mutex
	d := n.startDaemon()
	gen := 0
	current := func() (*Daemon, int) { dmu.Lock(); defer dmu.Unlock(); return d, gen }
	stop := make(chan struct{})
	killerDone := make(chan int)
	go func() {
		kills := 0
		defer func() { killerDone <- kills }()
		for {
			wait := time.Duration(1000+rng.Intn(3000)) * time.Millisecond // the random kill point
			select {
			case <-stop:
				return
			case <-time.After(wait):
			}
			dmu.Lock()
			d.Kill()
			kills++
			nd, err := t.spawnDaemon(n.dirs)
			if err == nil {
				err = nd.WaitReady(20 * time.Second)
			}
			if err != nil {
				dmu.Unlock()
				t.Errorf("restart after kill %d: %v", kills, err)
				return
			}
			d = nd
			gen++
			dmu.Unlock()
		}
	}()

	// retry runs a hypervisor call until the current daemon answers it (a kill in between is
	// just a lost connection to kata, which calls again).
	retry := func(what string, call func(*Daemon) error) error {
		deadline := time.Now().Add(60 * time.Second)
		for {
			dd, _ := current()
			err := call(dd)
			if err == nil {
				return nil
			}
			if _, _, isStatus := errCode(err); isStatus && !strings.Contains(err.Error(), "closed") {
				return err
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s: no daemon answered for 60 s: %v", what, err)
			}
			time.Sleep(20 * time.Millisecond) // poll for the restarted daemon
		}
	}
	jobs := make(chan int)
	var wg sync.WaitGroup
	var rmu sync.Mutex
	outcomes := map[string]int{}
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range jobs {
				p := n.addPod(fmt.Sprintf("crash-%d", k))
				outcome := "running"
				_, g0 := current()
				err := retry("CreateVM", p.createVM)
				if err == nil {
					err = retry("StartVM", p.startVM)
				}
				if err == nil {
					if _, cerr := p.agentCall("Check", nil, 30*time.Second); cerr != nil {
						if _, g1 := current(); g1 == g0 {
							t.Errorf("%s: Health/Check with no kill in between: %v", p.name, cerr)
						}
						outcome = "agent call lost to a kill"
					}
				} else {
					code, msg, _ := errCode(err)
					outcome = fmt.Sprintf("failed (code %d)", code)
					if _, g1 := current(); g1 == g0 {
						t.Errorf("%s: start failed with no kill in between: %s", p.name, describeErr(err))
					} else if code != 14 && code != 4 && code != 1 {
						t.Logf("%s: start failed after a kill: code %d %q", p.name, code, msg)
					}
				}
				p.closeAgent()
				if err := retry("StopVM", p.stopVM); err != nil {
					t.Errorf("%s: StopVM: %s", p.name, describeErr(err))
				}
				if l := linkJSON(t, p.netns, "vxlan1"); l != nil {
					t.Errorf("%s: vxlan1 left in the pod namespace after StopVM", p.name)
				}
				n.removePod(p)
				rmu.Lock()
				outcomes[outcome]++
				rmu.Unlock()
			}
		}()
	}
	for k := 0; k < total; k++ {
		jobs <- k
	}
	close(jobs)
	wg.Wait()
	close(stop)
	kills := <-killerDone
	t.Logf("%d lifecycles, %d kills: %v", total, kills, outcomes)
	if kills < 3 {
		t.Errorf("only %d kills happened during %d lifecycles", kills, total)
	}
	dd, _ := current()
	n.expectClean(dd, nil, "after 200 lifecycles and their StopVMs")
	if errs := n.bootErrors(); len(errs) > 0 {
		t.Errorf("pod VM boot errors: %v", first(errs, 5))
	}
}

// ---------------------------------------------------------------------------
// 6. Cloud faults: 20 % of ARM calls fail

var cleanCause = regexp.MustCompile(`HTTP \d{3}|timed out|Connection reset|Empty reply|Recv failure`)

func scNodeFaults(t *T) {
	n := newSimNode(t)
	defer n.close()
	n.bootDelay = 50 * time.Millisecond
	t.env = append(t.env, "AZURE_REQUEST_TIMEOUT=1s")
	d := n.startDaemon("-peerpods-limit-per-node", "40")
	seed := time.Now().UnixNano()
	t.Logf("chaos seed %d", seed)
	n.arm.Chaos(0.2, seed, 3*time.Second)
	const count = 30
	pods := make([]*shimPod, count)
	results := make([]string, count)
	var wg sync.WaitGroup
	for i := range pods {
		pods[i] = n.addPod(fmt.Sprintf("chaos-%d", i))
	}
	for i, p := range pods {
		wg.Add(1)
		go func(i int, p *shimPod) {
			defer wg.Done()
			err := p.up(d)
			switch {
			case err == nil:
				results[i] = "Running"
				p.expectWorkload(t)
			default:
				code, msg, isStatus := errCode(errors.Unwrap(err))
				// Clean: a gRPC code and the cause — Azure's HTTP answer, or for a call whose
				// every try was lost or reset (0.2^4 per call: rare, but it happens), the
				// transport error.
				if !isStatus || code <= 0 || !cleanCause.MatchString(msg) {
					t.Errorf("%s: not a clean failure: %s", p.name, errText(err))
				}
				results[i] = fmt.Sprintf("failed (code %d)", code)
				p.running = false
			}
			if err := p.down(d); err != nil {
				t.Errorf("%s: %s", p.name, errText(err))
			}
		}(i, p)
	}
	wg.Wait()
	tally := map[string]int{}
	for _, r := range results {
		tally[r]++
	}
	counts := n.arm.ChaosCounts()
	t.Logf("outcomes %v; faults injected %v", tally, counts)
	for _, k := range []string{"429", "500", "409", "lost", "reset"} {
		if counts[k] == 0 {
			t.Errorf("no %q fault was injected: the scenario proves nothing about it", k)
		}
	}
	if tally["Running"] < count/2 {
		t.Errorf("only %d of %d pods ran with 20 %% of ARM calls failing (retries should carry most)", tally["Running"], count)
	}
	// Deletes that failed are retried in the background: the cloud must empty without faults too.
	n.arm.Chaos(0, 1, 0)
	n.expectClean(d, pods, "after every pod was deleted")
}

// ---------------------------------------------------------------------------
// 7. Bad input

func scNodeBadInput(t *T) {
	n := newSimNode(t)
	defer n.close()
	t.env = append(t.env, "PROXY_TIMEOUT=5s")
	d := n.startDaemon()

	// A healthy pod runs through all of it.
	good := n.addPod("steady")
	if err := good.up(d); err != nil {
		t.Fatalf("steady pod: %s", errText(err))
	}
	n.waitBooted(good.vm)
	stillServing := func(after string) {
		if _, err := good.agentCall("StatsContainer", pbStr(1, "c0ffee"), kataDefaultTimeout); err != nil {
			t.Errorf("after %s: the running pod's agent call failed: %v", after, err)
		}
		var v VersionResponse
		if err := d.Call(hypervisorService, "Version", &VersionRequest{Version: "0.0.1"}, &v, optsPlain); err != nil {
			t.Errorf("after %s: Version: %s", after, describeErr(err))
		}
	}

	// Malformed frames: a header announcing more than 4 MiB, then plain garbage.
	for _, raw := range [][]byte{
		frameHeader(5<<20, 1, 1, 0),
		[]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
		append(frameHeader(7, 1, 1, 0), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff),
	} {
		c, err := net.DialTimeout("unix", d.Dirs.Sock, 5*time.Second)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		c.Write(raw)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		io.Copy(io.Discard, c) // the daemon answers with an error status or closes
		c.Close()
	}
	stillServing("malformed frames")

	// A CreateVM whose payload is not a CreateVMRequest.
	rc, err := dialRaw(d.Dirs.Sock)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	rc.send(encodeFrame(1, 1, 0, encodeRequest(hypervisorService, "CreateVM", []byte{0x0a, 0xff, 0x01}, 0)))
	// As Go's ttrpc server answers a payload that does not decode: 13 "error unmarshalling payload".
	if _, resp, err := rc.expectResponse(1, 5*time.Second); err != nil || resp.Code != 13 ||
		!strings.Contains(resp.Message, "unmarshalling") {
		t.Errorf("CreateVM with a broken protobuf: code %d %q, err %v; want code 13", resp.Code, resp.Message, err)
	}
	rc.Close()
	stillServing("a wrong protobuf")

	check := func(what string, p *shimPod, err error, want string) {
		code, msg, isStatus := errCode(err)
		if err == nil || !isStatus || code <= 0 || !strings.Contains(msg, want) {
			t.Errorf("%s: %s; want a clear error containing %q", what, describeErr(err), want)
		}
		if p != nil {
			if err := p.stopVM(d); err != nil {
				t.Errorf("%s: StopVM after the failure: %s", what, describeErr(err))
			}
		}
		stillServing(what)
	}

	// Hostile sandbox ids.
	for _, id := range []string{"../../etc/cron.d/x", "a/b", strings.Repeat("f", 300), "id:with:colons", "x\x00y", ".."} {
		p := &shimPod{node: n, name: "hostile", ns: "default", id: id, ann: kataAnnotations("hostile", "default")}
		check(fmt.Sprintf("CreateVM with sandbox id %q", abbrev(id)), nil, p.createVM(d), "sandbox id")
	}
	if got := listTree(filepath.Dir(d.Dirs.PodsDir)); containsAny(got, "etc/", "x", "b/") {
		t.Errorf("a hostile id escaped the pods dir: %q", got)
	}

	// Huge annotations.
	huge := n.addPod("huge")
	huge.ann[annMachineType] = strings.Repeat("Standard_DC2as_v5", 64<<10)
	err = huge.createVM(d)
	if err == nil {
		err = huge.startVM(d)
	}
	check("a 1 MiB machine_type annotation", huge, err, "machine_type")
	bigInit := n.addPod("big-initdata")
	bigInit.ann[annInitdata] = "algorithm = \"sha256\"\nversion = \"0.1.0\"\n[data]\n\"x.txt\" = '''" +
		randomText(600<<10) + "'''\n"
	err = bigInit.createVM(d)
	if err == nil {
		err = bigInit.startVM(d)
	}
	check("600 KiB of initdata", bigInit, err, "initdata")

	// Corrupt initdata.
	bad := n.addPod("bad-initdata")
	bad.ann[annInitdata] = "algorithm = \"sha256\"\nversion = \"0.1.0\"\n[data\n"
	err = bad.createVM(d)
	if err == nil {
		err = bad.startVM(d)
	}
	check("corrupt initdata TOML", bad, err, "initdata")

	// A network namespace path that cannot be opened.
	gone := n.addPod("no-netns")
	realNs := gone.netns
	gone.netns = realNs + "-missing"
	err = gone.createVM(d)
	if err == nil {
		err = gone.startVM(d)
	}
	check("an unreadable netns path", gone, err, "network namespace")
	gone.netns = realNs

	// A forwarder that never comes up: StartVM fails after PROXY_TIMEOUT with the reason.
	n.mu.Lock()
	n.noBoot["mute"] = true
	n.mu.Unlock()
	mute := n.addPod("mute")
	began := time.Now()
	err = mute.up(d)
	took := time.Since(began)
	check("a forwarder that never listens", mute, errors.Unwrap(err), "PROXY_TIMEOUT")
	if took < 4*time.Second || took > 20*time.Second {
		t.Errorf("StartVM with a silent forwarder took %v, want about PROXY_TIMEOUT=5s", took.Round(time.Millisecond))
	}

	if err := good.down(d); err != nil {
		t.Errorf("steady pod: %s", errText(err))
	}
	n.expectClean(d, n.pods, "after the bad inputs and the steady pod")
}

// ---------------------------------------------------------------------------
// The libvirt provider on the test driver: its node lives inside the daemon, so a VM is seen
// by what the provider leaves outside it: the cidata ISO written under -data-dir (the driver
// cannot upload volumes) and the address the daemon reports the driver gave. A VM boots when
// both are there and powers off when the ISO goes.

var lvAddress = regexp.MustCompile(`VM (podvm-\S+) has address (\S+)`)

func (n *simNode) watchLibvirt(d *Daemon) {
	n.watched.Add(1)
	go func() {
		defer n.watched.Done()
		seen := map[string]bool{}
		for {
			select {
			case <-n.stop:
				return
			case <-time.After(10 * time.Millisecond): // a directory watch by polling, bounded by the scenario
			}
			isos, _ := filepath.Glob(filepath.Join(n.dirs.FakeDir, "podvm-*-cloudinit.iso"))
			now := map[string]bool{}
			for _, iso := range isos {
				now[strings.TrimSuffix(filepath.Base(iso), "-cloudinit.iso")] = true
			}
			addrs := map[string]string{}
			if b, err := os.ReadFile(d.LogPath); err == nil {
				for _, m := range lvAddress.FindAllStringSubmatch(string(b), -1) {
					addrs[m[1]] = m[2]
				}
			}
			for name := range now {
				if seen[name] || addrs[name] == "" {
					continue
				}
				files := isoFiles(n.t, filepath.Join(n.dirs.FakeDir, name+"-cloudinit.iso"))
				if files == nil {
					continue // written but not complete yet
				}
				os.WriteFile(filepath.Join(n.udDir, name+".userdata"), []byte(files["user-data"]), 0o600)
				seen[name] = true
				n.mu.Lock()
				n.startVMLocked(name, -1, addrs[name])
				n.mu.Unlock()
			}
			for name := range seen {
				if !now[name] {
					delete(seen, name)
					n.vmDeleted(name)
				}
			}
		}
	}()
}

func scNodeLibvirt(t *T) {
	n := newSimNode(t)
	defer n.close()
	d := n.startDaemon()
	n.watchLibvirt(d)
	p := n.addPod("lv-nginx")
	if err := p.up(d); err != nil {
		t.Fatalf("%s: %s", p.name, errText(err))
	}
	vm := n.waitBooted(p.vm)
	if !strings.HasPrefix(vm.ip, "192.168.122.") {
		t.Errorf("the test driver's address %q", vm.ip)
	}
	p.expectAgentSequence(t)
	p.expectWorkload(t)
	if err := p.down(d); err != nil {
		t.Fatalf("%s", errText(err))
	}
	n.expectClean(d, []*shimPod{p}, "after the pod was deleted")
	if errs := n.bootErrors(); len(errs) > 0 {
		t.Errorf("pod VM boot errors: %v", errs)
	}
}

func randomText(n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789 "
	r := rand.New(rand.NewSource(int64(n)))
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[r.Intn(len(alphabet))]
	}
	return string(b)
}

func gzipTo(w io.Writer, b []byte) error {
	zw := gzip.NewWriter(w)
	if _, err := zw.Write(b); err != nil {
		return err
	}
	return zw.Close()
}
