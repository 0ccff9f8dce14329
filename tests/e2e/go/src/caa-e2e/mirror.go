// The pod VM side of a VXLAN pod network, for tests: given the forwarder
// configuration (apf.json) that the daemon writes into a peer pod VM's user
// data, build inside a "VM" network namespace what the pod VM's
// agent-protocol-forwarder builds — a VXLAN device towards the worker node,
// moved into the VM's pod namespace and given the pod's name, MAC, MTU,
// address, routes and neighbours.
//
// All netlink work goes through handles bound to the target namespace
// (netlink.NewHandleAt); the calling thread is locked while they are opened,
// and the program's own namespace is checked to be unchanged afterwards.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

const (
	mirrorVxlanName    = "vxlan0" // the device's name in the VM host namespace
	mirrorMaxMTU       = 1450     // 1500 less the VXLAN overhead
	mirrorDefaultVXLAN = 4789
)

// podNetworkConfig is apf.json's "pod-network" object.
type podNetworkConfig struct {
	PodIP               string           `json:"podip"`
	PodHwAddr           string           `json:"pod-hw-addr"`
	Interface           string           `json:"interface"`
	WorkerNodeIP        string           `json:"worker-node-ip"`
	TunnelType          string           `json:"tunnel-type"`
	Routes              []podNetRoute    `json:"routes"`
	Neighbors           []podNetNeighbor `json:"neighbors"`
	MTU                 int              `json:"mtu"`
	Index               int              `json:"index"`
	VXLANPort           int              `json:"vxlan-port"`
	VXLANID             int              `json:"vxlan-id"`
	Dedicated           bool             `json:"dedicated"`
	ExternalNetViaPodVM bool             `json:"external-net-via-pod-vm"`
}

type podNetRoute struct {
	Dst      string `json:"dst"`
	GW       string `json:"gw"`
	Dev      string `json:"dev"`
	Protocol string `json:"protocol,omitempty"`
	Scope    string `json:"scope,omitempty"`
}

type podNetNeighbor struct {
	IP     string `json:"ip"`
	HwAddr string `json:"hw-addr"`
	Dev    string `json:"dev"`
	State  string `json:"state"`
}

// mirrorAPF is the part of apf.json the mirror reads; other keys are ignored.
type mirrorAPF struct {
	PodNetwork   *podNetworkConfig `json:"pod-network"`
	PodNamespace string            `json:"pod-namespace"`
	PodName      string            `json:"pod-name"`
}

// mirrorPlan is a pod-network object checked and parsed into netlink terms.
type mirrorPlan struct {
	cfg    *podNetworkConfig
	ifname string
	addr   *net.IPNet // the pod address with its prefix
	subnet *net.IPNet // the prefix itself
	hw     net.HardwareAddr
	remote net.IP
	vni    int
	port   int
	mtu    int
	routes []mirrorRoute
	neighs []mirrorNeigh
}

type mirrorRoute struct {
	desc     string
	dst      *net.IPNet
	gw       net.IP
	dev      string
	protocol netlink.RouteProtocol
	scope    netlink.Scope
	hasScope bool
}

type mirrorNeigh struct {
	desc string
	ip   net.IP
	hw   net.HardwareAddr
	dev  string
}

func parseMirrorConfig(apfJSON []byte) (*mirrorPlan, error) {
	var apf mirrorAPF
	if err := json.Unmarshal(apfJSON, &apf); err != nil {
		return nil, fmt.Errorf("parsing apf.json: %v", err)
	}
	c := apf.PodNetwork
	if c == nil {
		return nil, fmt.Errorf("apf.json has no pod-network object")
	}
	p := &mirrorPlan{cfg: c, ifname: c.Interface, vni: c.VXLANID, port: c.VXLANPort}
	if tt := strings.ToLower(c.TunnelType); tt != "" && tt != "vxlan" {
		return nil, fmt.Errorf("pod-network.tunnel-type %q: only vxlan is supported", c.TunnelType)
	}
	if p.ifname == "" {
		return nil, fmt.Errorf("pod-network.interface is empty")
	}
	if len(p.ifname) >= syscall.IFNAMSIZ || strings.ContainsAny(p.ifname, "/ \t\n") {
		return nil, fmt.Errorf("pod-network.interface %q is not a valid interface name", p.ifname)
	}
	ip, subnet, err := net.ParseCIDR(c.PodIP)
	if err != nil {
		return nil, fmt.Errorf("pod-network.podip %q: %v", c.PodIP, err)
	}
	p.addr = &net.IPNet{IP: ip, Mask: subnet.Mask}
	p.subnet = subnet
	if p.hw, err = net.ParseMAC(c.PodHwAddr); err != nil {
		return nil, fmt.Errorf("pod-network.pod-hw-addr %q: %v", c.PodHwAddr, err)
	}
	if len(p.hw) != 6 {
		return nil, fmt.Errorf("pod-network.pod-hw-addr %q is not an Ethernet address", c.PodHwAddr)
	}
	if p.remote = parseIPOrCIDR(c.WorkerNodeIP); p.remote == nil {
		return nil, fmt.Errorf("pod-network.worker-node-ip %q is not an address", c.WorkerNodeIP)
	}
	if p.vni <= 0 || p.vni >= 1<<24 {
		return nil, fmt.Errorf("pod-network.vxlan-id %d is not a VNI (1..16777215)", p.vni)
	}
	if p.port == 0 {
		p.port = mirrorDefaultVXLAN
	}
	if p.port < 0 || p.port > 65535 {
		return nil, fmt.Errorf("pod-network.vxlan-port %d is not a UDP port", p.port)
	}
	p.mtu = c.MTU
	if p.mtu <= 0 || p.mtu > mirrorMaxMTU {
		p.mtu = mirrorMaxMTU
	}
	for i, r := range c.Routes {
		mr, err := parseMirrorRoute(r)
		if err != nil {
			return nil, fmt.Errorf("pod-network.routes[%d]: %v", i, err)
		}
		p.routes = append(p.routes, mr)
	}
	for i, n := range c.Neighbors {
		mn := mirrorNeigh{desc: fmt.Sprintf("%s lladdr %s dev %s", n.IP, n.HwAddr, n.Dev), dev: n.Dev}
		if mn.ip = net.ParseIP(n.IP); mn.ip == nil {
			return nil, fmt.Errorf("pod-network.neighbors[%d]: ip %q is not an address", i, n.IP)
		}
		if mn.hw, err = net.ParseMAC(n.HwAddr); err != nil {
			return nil, fmt.Errorf("pod-network.neighbors[%d]: hw-addr %q: %v", i, n.HwAddr, err)
		}
		p.neighs = append(p.neighs, mn)
	}
	return p, nil
}

// parseIPOrCIDR accepts "a.b.c.d" or "a.b.c.d/len" and returns the address.
func parseIPOrCIDR(s string) net.IP {
	if ip, _, err := net.ParseCIDR(s); err == nil {
		return ip
	}
	return net.ParseIP(s)
}

func parseMirrorRoute(r podNetRoute) (mirrorRoute, error) {
	mr := mirrorRoute{dev: r.Dev}
	mr.desc = fmt.Sprintf("dst %q gw %q dev %q", r.Dst, r.GW, r.Dev)
	if r.GW != "" {
		if mr.gw = net.ParseIP(r.GW); mr.gw == nil {
			return mr, fmt.Errorf("gw %q is not an address", r.GW)
		}
	}
	switch r.Dst {
	case "", "default":
		// The library refuses a route with neither Dst nor Gw, so a default
		// route always gets an explicit all-zero prefix of the right family.
		if mr.gw != nil && mr.gw.To4() == nil {
			mr.dst = &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}
		} else {
			mr.dst = &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}
		}
	default:
		_, dst, err := net.ParseCIDR(r.Dst)
		if err != nil {
			ip := net.ParseIP(r.Dst)
			if ip == nil {
				return mr, fmt.Errorf("dst %q is not a prefix", r.Dst)
			}
			bits := 128
			if ip.To4() != nil {
				ip, bits = ip.To4(), 32
			}
			dst = &net.IPNet{IP: ip, Mask: net.CIDRMask(bits, bits)}
		}
		mr.dst = dst
	}
	if mr.gw != nil && (mr.gw.To4() == nil) != (mr.dst.IP.To4() == nil) {
		return mr, fmt.Errorf("gw %s and dst %s are of different address families", mr.gw, mr.dst)
	}
	switch strings.ToLower(r.Protocol) {
	case "":
	case "static":
		mr.protocol = syscall.RTPROT_STATIC
	case "boot":
		mr.protocol = syscall.RTPROT_BOOT
	case "dhcp":
		mr.protocol = 16 // RTPROT_DHCP; not in package syscall
	case "kernel":
		mr.protocol = syscall.RTPROT_KERNEL
	default:
		n, err := strconv.Atoi(r.Protocol)
		if err != nil || n < 0 || n > 255 {
			return mr, fmt.Errorf("protocol %q: want static, boot, dhcp or kernel", r.Protocol)
		}
		mr.protocol = netlink.RouteProtocol(n)
	}
	mr.hasScope = true
	switch strings.ToLower(r.Scope) {
	case "":
		mr.hasScope = false
	case "universe", "global":
		mr.scope = netlink.SCOPE_UNIVERSE
	case "site":
		mr.scope = netlink.SCOPE_SITE
	case "link":
		mr.scope = netlink.SCOPE_LINK
	case "host":
		mr.scope = netlink.SCOPE_HOST
	case "nowhere":
		mr.scope = netlink.SCOPE_NOWHERE
	default:
		return mr, fmt.Errorf("scope %q: want universe, site, link, host or nowhere", r.Scope)
	}
	return mr, nil
}

// nsHandles opens a namespace path and a rtnetlink handle bound to it. A
// missing path is reported with os.IsNotExist-compatible errors.
func openNsHandle(path string) (netns.NsHandle, *netlink.Handle, error) {
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return netns.None(), nil, &os.PathError{Op: "open netns", Path: path, Err: err}
	}
	h, err := netlink.NewHandleAt(ns, syscall.NETLINK_ROUTE)
	if err != nil {
		ns.Close()
		return netns.None(), nil, fmt.Errorf("netlink handle in %s: %v", path, err)
	}
	return ns, h, nil
}

// withLockedNetns runs fn on a locked OS thread and checks that the thread
// is back in the namespace it started in (moving it back if not).
func withLockedNetns(fn func() error) (err error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return fmt.Errorf("reading the current network namespace: %v", err)
	}
	defer orig.Close()
	defer func() {
		cur, gerr := netns.Get()
		if gerr == nil {
			same := cur.Equal(orig)
			cur.Close()
			if same {
				return
			}
		}
		serr := netns.Set(orig)
		if err == nil {
			err = fmt.Errorf("the thread's network namespace changed (restored: %v)", serr)
		}
		if serr != nil {
			// A thread stuck in a foreign namespace must not go back to the
			// Go scheduler: leave it locked so it exits with this goroutine.
			runtime.LockOSThread()
		}
	}()
	return fn()
}

// BuildMirror builds in vmNs/podNs (netns paths, e.g. /run/netns/vm1) the
// pod VM side of the VXLAN pod network described by apf.json.
func BuildMirror(apfJSON []byte, vmNs, podNs string) error {
	p, err := parseMirrorConfig(apfJSON)
	if err != nil {
		return fmt.Errorf("mirror: %v", err)
	}
	return withLockedNetns(func() error { return buildMirror(p, vmNs, podNs) })
}

func buildMirror(p *mirrorPlan, vmNs, podNs string) (err error) {
	vmH, vmNl, err := openNsHandle(vmNs)
	if err != nil {
		return fmt.Errorf("mirror: VM namespace: %v", err)
	}
	defer vmH.Close()
	defer vmNl.Close()
	podH, podNl, err := openNsHandle(podNs)
	if err != nil {
		return fmt.Errorf("mirror: pod namespace: %v", err)
	}
	defer podH.Close()
	defer podNl.Close()

	// Step 1: the VXLAN device in the VM host namespace.
	vx := &netlink.Vxlan{
		LinkAttrs: netlink.LinkAttrs{Name: mirrorVxlanName},
		VxlanId:   p.vni,
		Group:     p.remote,
		Port:      p.port,
		Learning:  false,
	}
	if err := vmNl.LinkAdd(vx); err != nil {
		hint := ""
		if errors.Is(err, syscall.EEXIST) {
			// A device keeps its VNI/port in the namespace it was created in,
			// even after it moved to the pod namespace.
			hint = fmt.Sprintf(" (a %s, or a VXLAN device with VNI %d and dstport %d, created there already exists)",
				mirrorVxlanName, p.vni, p.port)
		}
		return fmt.Errorf("mirror step 1 (create %s vni %d remote %s dstport %d in %s): %v%s",
			mirrorVxlanName, p.vni, p.remote, p.port, vmNs, err, hint)
	}
	inPod := false
	var link netlink.Link
	defer func() {
		if err == nil {
			return
		}
		// Leave nothing half-built behind.
		if inPod && link != nil {
			podNl.LinkDel(link)
		} else if !inPod {
			if l, lerr := vmNl.LinkByName(mirrorVxlanName); lerr == nil {
				vmNl.LinkDel(l)
			}
		}
	}()

	// Step 2: into the pod namespace, renamed and configured.
	if err := vmNl.LinkSetNsFd(vx, int(podH)); err != nil {
		return fmt.Errorf("mirror step 2 (move %s to %s): %v", mirrorVxlanName, podNs, err)
	}
	inPod = true
	if link, err = podNl.LinkByName(mirrorVxlanName); err != nil {
		return fmt.Errorf("mirror step 2 (find %s in %s): %v", mirrorVxlanName, podNs, err)
	}
	if p.ifname != mirrorVxlanName {
		if err := podNl.LinkSetName(link, p.ifname); err != nil {
			return fmt.Errorf("mirror step 2 (rename %s to %s in %s): %v", mirrorVxlanName, p.ifname, podNs, err)
		}
	}
	if link, err = podNl.LinkByName(p.ifname); err != nil {
		return fmt.Errorf("mirror step 2 (find %s in %s after the rename): %v", p.ifname, podNs, err)
	}
	if err := podNl.LinkSetHardwareAddr(link, p.hw); err != nil {
		return fmt.Errorf("mirror step 2 (set %s address %s): %v", p.ifname, p.hw, err)
	}
	if err := podNl.LinkSetMTU(link, p.mtu); err != nil {
		return fmt.Errorf("mirror step 2 (set %s mtu %d): %v", p.ifname, p.mtu, err)
	}
	if err := podNl.AddrAdd(link, &netlink.Addr{IPNet: p.addr}); err != nil {
		return fmt.Errorf("mirror step 2 (add address %s to %s): %v", p.addr, p.ifname, err)
	}
	if err := podNl.LinkSetUp(link); err != nil {
		return fmt.Errorf("mirror step 2 (set %s up): %v", p.ifname, err)
	}
	lo, err := podNl.LinkByName("lo")
	if err == nil {
		err = podNl.LinkSetUp(lo)
	}
	if err != nil {
		return fmt.Errorf("mirror step 2 (set lo up in %s): %v", podNs, err)
	}

	// Step 3: the prefix route the kernel added with the address goes; the
	// configured routes below say what the pod network wants instead.
	family := netlink.FAMILY_V4
	if p.addr.IP.To4() == nil {
		family = netlink.FAMILY_V6
	}
	if ones, bits := p.subnet.Mask.Size(); ones != bits {
		routes, err := podNl.RouteList(link, family)
		if err != nil {
			return fmt.Errorf("mirror step 3 (list routes on %s): %v", p.ifname, err)
		}
		for i := range routes {
			r := routes[i]
			if r.Dst == nil || r.Dst.String() != p.subnet.String() || r.Protocol != syscall.RTPROT_KERNEL {
				continue
			}
			if err := podNl.RouteDel(&r); err != nil {
				return fmt.Errorf("mirror step 3 (delete kernel route %s dev %s): %v", p.subnet, p.ifname, err)
			}
		}
	}

	// Step 4: routes without a gateway first, so that gateways are reachable.
	linkIndex := func(dev string) (int, error) {
		if dev == "" || dev == p.ifname {
			return link.Attrs().Index, nil
		}
		l, err := podNl.LinkByName(dev)
		if err != nil {
			return 0, fmt.Errorf("device %s: %v", dev, err)
		}
		return l.Attrs().Index, nil
	}
	for pass := 0; pass < 2; pass++ {
		for _, mr := range p.routes {
			if (mr.gw == nil) != (pass == 0) {
				continue
			}
			idx, err := linkIndex(mr.dev)
			if err != nil {
				return fmt.Errorf("mirror step 4 (route %s): %v", mr.desc, err)
			}
			r := &netlink.Route{LinkIndex: idx, Dst: mr.dst, Gw: mr.gw, Protocol: mr.protocol}
			switch {
			case mr.hasScope:
				r.Scope = mr.scope
			case mr.gw == nil:
				r.Scope = netlink.SCOPE_LINK
			default:
				r.Scope = netlink.SCOPE_UNIVERSE
			}
			if err := podNl.RouteReplace(r); err != nil {
				return fmt.Errorf("mirror step 4 (route %s): %v", mr.desc, err)
			}
		}
	}

	// Step 5: permanent neighbour entries.
	for _, mn := range p.neighs {
		idx, err := linkIndex(mn.dev)
		if err != nil {
			return fmt.Errorf("mirror step 5 (neighbour %s): %v", mn.desc, err)
		}
		fam := netlink.FAMILY_V4
		if mn.ip.To4() == nil {
			fam = netlink.FAMILY_V6
		}
		n := &netlink.Neigh{LinkIndex: idx, Family: fam, State: netlink.NUD_PERMANENT, IP: mn.ip, HardwareAddr: mn.hw}
		if err := podNl.NeighSet(n); err != nil {
			return fmt.Errorf("mirror step 5 (neighbour %s): %v", mn.desc, err)
		}
	}
	return nil
}

// TeardownMirror undoes BuildMirror: it deletes the pod interface in podNs
// and a leftover vxlan0 in vmNs. A missing namespace or device is not an
// error; a device of that name that is not a VXLAN device is left alone and
// reported.
func TeardownMirror(apfJSON []byte, vmNs, podNs string) error {
	p, err := parseMirrorConfig(apfJSON)
	if err != nil {
		return fmt.Errorf("mirror teardown: %v", err)
	}
	return withLockedNetns(func() error {
		var errs []string
		for _, t := range []struct{ ns, dev string }{{podNs, p.ifname}, {vmNs, mirrorVxlanName}} {
			if err := deleteVxlanIn(t.ns, t.dev); err != nil {
				errs = append(errs, err.Error())
			}
		}
		if len(errs) > 0 {
			return fmt.Errorf("mirror teardown: %s", strings.Join(errs, "; "))
		}
		return nil
	})
}

func deleteVxlanIn(nsPath, dev string) error {
	if nsPath == "" {
		return nil
	}
	h, nlh, err := openNsHandle(nsPath)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) {
			return nil
		}
		return err
	}
	defer h.Close()
	defer nlh.Close()
	l, err := nlh.LinkByName(dev)
	if err != nil {
		if _, ok := err.(netlink.LinkNotFoundError); ok {
			return nil
		}
		return fmt.Errorf("looking up %s in %s: %v", dev, nsPath, err)
	}
	if l.Type() != "vxlan" {
		return fmt.Errorf("%s in %s is a %s device, not vxlan: left alone", dev, nsPath, l.Type())
	}
	if err := nlh.LinkDel(l); err != nil {
		return fmt.Errorf("deleting %s in %s: %v", dev, nsPath, err)
	}
	return nil
}

// runMirror is the -mirror command-line mode.
func runMirror(apfPath, vmNs, podNs string, teardown bool) int {
	if vmNs == "" || podNs == "" {
		fmt.Fprintln(os.Stderr, "mirror: -mirror needs -mirror-vm-netns PATH and -mirror-pod-netns PATH")
		return 1
	}
	raw, err := os.ReadFile(apfPath)
	if err != nil {
		fmt.Fprintf(os.Stderr, "mirror: %v\n", err)
		return 1
	}
	if teardown {
		if err := TeardownMirror(raw, vmNs, podNs); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Println("mirror: torn down")
		return 0
	}
	if err := BuildMirror(raw, vmNs, podNs); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	p, _ := parseMirrorConfig(raw)
	fmt.Printf("mirror: %s %s vni %d remote %s up\n", p.ifname, p.addr, p.vni, p.remote)
	return 0
}
