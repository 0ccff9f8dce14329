package main

// Scenarios against a real libvirt daemon, run only inside tests/libvirt/isolated.sh (which
// starts that daemon in namespaces of its own and sets CAA_E2E_LIBVIRT_*). Domains are qemu
// (TCG) guests that never boot an OS; an address "appears" when the test publishes a DHCP
// lease for the domain's MAC, as dnsmasq would. Everything is checked with virsh against that
// daemon: domain XML, volumes, the uploaded ISO (xorriso), and that nothing is left.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

func libvirtdScenarios() []scenario {
	if os.Getenv("CAA_E2E_LIBVIRT_URI") == "" {
		return nil
	}
	return []scenario{
		{"libvirtd_lifecycle", scLibvirtdLifecycle},
		{"libvirtd_kill9_mid_create", scLibvirtdKill9},
		{"libvirtd_restart_mid_run", scLibvirtdRestart},
		{"libvirtd_away_mid_start", scLibvirtdAwayMidStart},
	}
}

func virsh(args ...string) (string, error) {
	cmd := exec.Command("timeout", append([]string{"30", "virsh", "-q", "-c", os.Getenv("CAA_E2E_LIBVIRT_URI")}, args...)...)
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func lvctl(args ...string) error {
	out, err := exec.Command("timeout", append([]string{"90", os.Getenv("CAA_E2E_LIBVIRT_CTL")}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%v: %s", err, out)
	}
	return nil
}

func (t *T) startLibvirtd(dirs Dirs) *Daemon {
	dirs.Libvirt = true
	dirs.LibvirtURI = os.Getenv("CAA_E2E_LIBVIRT_URI")
	// BIOS boot (no OVMF needed), a small TCG guest.
	return t.StartDaemonDirs(dirs, "-firmware", "", "-memory", "256", "-cpu", "1", "-disable-cvm")
}

func libvirtdDirs(t *T) Dirs {
	dirs := t.defaultDirs()
	dirs.Libvirt = true
	dirs.LibvirtURI = os.Getenv("CAA_E2E_LIBVIRT_URI")
	return dirs
}

func domainMAC(name string) string {
	out, err := virsh("domiflist", name)
	if err != nil {
		return ""
	}
	for _, f := range strings.Fields(out) {
		if strings.HasPrefix(f, "52:54:00:") {
			return f
		}
	}
	return ""
}

func volumes() string {
	out, _ := virsh("vol-list", "default")
	var names []string
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 0 {
			names = append(names, f[0])
		}
	}
	return strings.Join(names, ",")
}

func waitDomainRunning(t *T, name string) bool {
	return waitFor(60*time.Second, func() bool {
		st, err := virsh("domstate", name)
		return err == nil && st == "running"
	})
}

// startUntilRunning creates a sandbox for pod and starts it, returning once its domain runs
// (StartVM still waits for the address); failures are the scenario's.
func startUntilRunning(t *T, d *Daemon, pod string) (id, name string, ch <-chan asyncResult) {
	id = newSandboxID()
	name = instanceName(pod, id)
	d.MustCreate(id, pod, "default")
	ch = startAsync(d, id, optsStart)
	if !waitDomainRunning(t, name) {
		t.Fatalf("domain %s never ran; log %q", name, tailFile(d.LogPath, 5))
	}
	return id, name, ch
}

func assertNothingLeft(t *T, name string) {
	if out, _ := virsh("list", "--all", "--name"); strings.Contains(out, name) {
		t.Errorf("domain %s is still defined: %q", name, out)
	}
	if v := volumes(); v != "podvm-base.qcow2" {
		t.Errorf("pool volumes %q, want only podvm-base.qcow2", v)
	}
}

func scLibvirtdLifecycle(t *T) {
	d := t.startLibvirtd(libvirtdDirs(t))
	pod := "web-real"
	id, name, ch := startUntilRunning(t, d, pod)
	xml, _ := virsh("dumpxml", name)
	for _, want := range []string{"<caa:sandbox>" + id + "</caa:sandbox>", "type='qemu'", name + "-root.qcow2",
		name + "-cloudinit.iso", "<source network='default'"} {
		if !strings.Contains(xml, want) {
			t.Errorf("domain XML lacks %q", want)
		}
	}
	if v := volumes(); !strings.Contains(v, name+"-root.qcow2") || !strings.Contains(v, name+"-cloudinit.iso") {
		t.Errorf("pool volumes %q", v)
	}
	vx, _ := virsh("vol-dumpxml", "--pool", "default", name+"-root.qcow2")
	if !strings.Contains(vx, "<path>"+filepath.Join(os.Getenv("CAA_E2E_LIBVIRT_POOL"), "podvm-base.qcow2")+"</path>") ||
		!strings.Contains(vx, "<capacity unit='bytes'>10737418240</capacity>") {
		t.Errorf("overlay volume XML:\n%s", vx)
	}
	// The ISO went up through a libvirt stream: download it and read it back.
	iso := filepath.Join(t.dir, "down.iso")
	if out, err := virsh("vol-download", "--pool", "default", name+"-cloudinit.iso", iso); err != nil {
		t.Errorf("vol-download: %v %s", err, out)
	} else {
		files := isoFiles(t, iso)
		if len(files) != 3 || files["meta-data"] != "local-hostname: "+name || files["vendor-data"] != "" ||
			!strings.HasPrefix(files["user-data"], "#cloud-config\n\nwrite_files:\n  - path: /run/peerpod/apf.json\n") {
			t.Errorf("uploaded ISO holds %v", keys(files))
		}
		if out, err := exec.Command("blkid", "-o", "value", "-s", "LABEL", iso).Output(); err != nil ||
			strings.TrimSpace(string(out)) != "cidata" {
			t.Errorf("uploaded ISO label %q", out)
		}
	}
	if exists(filepath.Join(d.Dirs.FakeDir, name+"-cloudinit.iso")) {
		t.Errorf("a real daemon uploads: no local ISO file expected")
	}
	// The address appears now; StartVM must answer within one poll step (250 ms) or so.
	mac := domainMAC(name)
	if err := lvctl("lease", mac, "192.168.122.77"); err != nil {
		t.Fatalf("%v", err)
	}
	appeared := time.Now()
	r, ok := waitResult(ch, 30*time.Second)
	if !ok {
		t.Fatalf("StartVM did not return after the lease appeared")
	}
	mustOK(t, "StartVM", r.err)
	if lag := r.at.Sub(appeared); lag > 750*time.Millisecond {
		t.Errorf("StartVM returned %v after the address appeared (poll step 250 ms)", lag)
	}
	if !logHas(d, "VM "+name+" has address 192.168.122.77") {
		t.Errorf("the leased address is not the one reported")
	}
	uuid, _ := virsh("domuuid", name)
	if vmid, err := d.GetInfo(pod, "default", false, optsPlain); err != nil || vmid != uuid {
		t.Errorf("GetInfo %q, %v; want the domain UUID %q", vmid, err, uuid)
	}
	mustOK(t, "StopVM", d.StopVM(id))
	assertNothingLeft(t, name)
}

func scLibvirtdKill9(t *T) {
	dirs := libvirtdDirs(t)
	d := t.startLibvirtd(dirs)
	id, name, _ := startUntilRunning(t, d, "crashy")
	d.Kill() // SIGKILL in the middle of StartVM: the domain runs, no address yet
	d2 := t.startLibvirtd(dirs)
	// Recovery rolls the interrupted start back by itself ...
	if !waitFor(30*time.Second, func() bool { out, _ := virsh("list", "--all", "--name"); return !strings.Contains(out, name) }) {
		t.Errorf("the interrupted start's domain was not rolled back after the restart")
	}
	// ... and kata's StopVM then finds nothing left to do.
	mustOK(t, "StopVM after the restart", d2.StopVM(id))
	assertNothingLeft(t, name)
}

func scLibvirtdRestart(t *T) {
	d := t.startLibvirtd(libvirtdDirs(t))
	id, name, ch := startUntilRunning(t, d, "survivor")
	if err := lvctl("lease", domainMAC(name), "192.168.122.88"); err != nil {
		t.Fatalf("%v", err)
	}
	if r, ok := waitResult(ch, 30*time.Second); !ok || r.err != nil {
		t.Fatalf("StartVM: %v %v", ok, r.err)
	}
	// libvirtd restarts under the running pod; the guest keeps running.
	if err := lvctl("restart"); err != nil {
		t.Fatalf("restarting libvirtd: %v", err)
	}
	mustOK(t, "StopVM after the libvirtd restart", d.StopVM(id))
	assertNothingLeft(t, name)
	if !logHas(d, "reconnect") {
		t.Errorf("no reconnection logged after the libvirtd restart")
	}
	// And a new pod works on the reconnected daemon.
	id2, name2, ch := startUntilRunning(t, d, "after")
	lvctl("lease", domainMAC(name2), "192.168.122.99")
	if r, ok := waitResult(ch, 30*time.Second); !ok || r.err != nil {
		t.Errorf("StartVM after the restart: %v %v", ok, r.err)
	}
	mustOK(t, "StopVM", d.StopVM(id2))
	assertNothingLeft(t, name2)
}

// libvirtd goes away (stopped for a restart) while StartVM waits for the VM's address, and
// comes back: the start carries on and succeeds once the address appears (it failed the
// pod at the first poll that found no libvirtd).
func scLibvirtdAwayMidStart(t *T) {
	d := t.startLibvirtd(libvirtdDirs(t))
	id, name, ch := startUntilRunning(t, d, "waiter")
	mac := domainMAC(name)
	if err := lvctl("stop"); err != nil {
		t.Fatalf("stopping libvirtd: %v", err)
	}
	if !waitFor(10*time.Second, func() bool { return logHas(d, "VM "+name+": waiting for libvirtd") }) {
		t.Errorf("no poll noticed libvirtd gone")
	}
	if err := lvctl("start"); err != nil {
		t.Fatalf("starting libvirtd: %v", err)
	}
	if err := lvctl("lease", mac, "192.168.122.66"); err != nil {
		t.Fatalf("%v", err)
	}
	if r, ok := waitResult(ch, 30*time.Second); !ok || r.err != nil {
		t.Fatalf("StartVM across a libvirtd outage: done %v, %s", ok, describeErr(r.err))
	}
	mustOK(t, "StopVM", d.StopVM(id))
	assertNothingLeft(t, name)
}
