package main

// Scenarios of the libvirt provider through the real daemon, on libvirt's test driver with
// the shipped node (config/libvirt-test-node.xml). The driver keeps its node inside the
// daemon's process, so what the cloud holds is checked through what the daemon reports
// (GetInfo, logs) and through the cidata ISO, which this driver cannot upload and the
// provider therefore writes under -data-dir: read back with xorriso and blkid.

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"
)

func libvirtScenarios() []scenario {
	return []scenario{
		{"libvirt_lifecycle", scLibvirtLifecycle},
		{"libvirt_missing_image", scLibvirtMissingImage},
		{"libvirt_bad_settings", scLibvirtBadSettings},
		{"libvirt_steady_memcheck", scLibvirtSteadyMemcheck},
		{"orphan_gc", scOrphanGC},
	}
}

func (t *T) startLibvirt(extra ...string) *Daemon {
	dirs := t.defaultDirs()
	dirs.Libvirt = true
	return t.StartDaemonDirs(dirs, extra...)
}

func isoFiles(t *T, iso string) map[string]string {
	out := filepath.Join(t.dir, "iso-"+filepath.Base(iso))
	os.RemoveAll(out)
	cmd := exec.Command("xorriso", "-osirrox", "on", "-indev", iso, "-extract", "/", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("xorriso -extract %s: %v\n%s", iso, err, b)
		return nil
	}
	files := map[string]string{}
	ents, _ := os.ReadDir(out)
	for _, e := range ents {
		b, _ := os.ReadFile(filepath.Join(out, e.Name()))
		files[e.Name()] = string(b)
	}
	return files
}

func scLibvirtLifecycle(t *T) {
	d := t.startLibvirt()
	id := newSandboxID()
	pod, ns := "nginx-lv", "e2e"
	name := instanceName(pod, id)
	d.MustCreate(id, pod, ns)
	began := time.Now()
	mustOK(t, "StartVM", d.StartVM(id, optsStart))
	if took := time.Since(began); took > 5*time.Second {
		t.Errorf("StartVM on the test driver took %v", took)
	}
	vmid, err := d.GetInfo(pod, ns, false, optsPlain)
	if err != nil || !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`).MatchString(vmid) {
		t.Errorf("GetInfo = %q, %s; want the domain UUID", vmid, describeErr(err))
	}
	if !logHas(d, "VM created: name="+name+", uuid="+vmid) {
		t.Errorf("no 'VM created' line for %s/%s", name, vmid)
	}
	m := regexp.MustCompile(`VM ` + name + ` has address (\S+)`).FindStringSubmatch(string(mustReadFile(t, d.LogPath)))
	if m == nil || net.ParseIP(m[1]) == nil {
		t.Errorf("no parseable address reported for %s", name)
	}
	iso := filepath.Join(d.Dirs.FakeDir, name+"-cloudinit.iso")
	if out, err := exec.Command("blkid", "-o", "value", "-s", "LABEL", iso).Output(); err != nil ||
		strings.TrimSpace(string(out)) != "cidata" {
		t.Errorf("ISO label %q (%v), want cidata", out, err)
	}
	files := isoFiles(t, iso)
	if len(files) != 3 || files["meta-data"] != "local-hostname: "+name || files["vendor-data"] != "" {
		t.Errorf("ISO files %v", keys(files))
	}
	if cc, err := parseCloudConfig([]byte(files["user-data"])); err != nil || len(cc) == 0 ||
		cc[0].Path != "/run/peerpod/apf.json" || cc[0].Content == nil {
		t.Errorf("user-data in the ISO: %v", err)
	} else {
		var apf apfConfig
		if err := json.Unmarshal([]byte(*cc[0].Content), &apf); err != nil || apf.PodName != pod {
			t.Errorf("apf.json in the ISO: %v, pod %q", err, apf.PodName)
		}
	}
	if st, err := os.Stat(iso); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("ISO %s: %v, want mode 0600 (it holds a TLS key)", iso, err)
	}
	mustOK(t, "StopVM", d.StopVM(id))
	if exists(iso) {
		t.Errorf("%s remains after StopVM", iso)
	}
	if !logHas(d, "deleted an instance "+name) {
		t.Errorf("no deletion logged for %s", name)
	}
}

// scLibvirtSteadyMemcheck: libvirt lifecycles (domain, overlay volume, cidata ISO, the
// relay to the forwarder) under memcheck keep nothing per sandbox: the provider's calls run
// in the thread pool over one shared connection, whose caches the warm-up fills.
func scLibvirtSteadyMemcheck(t *T) {
	dirs := t.defaultDirs()
	dirs.Libvirt = true
	dirs, prefix, ok := memcheckWrap(t, dirs)
	if !ok {
		return
	}
	d := t.StartDaemonDirs(dirs)
	expectFlatHeap(t, d, prefix, 12, 48, 1, 16*48, nil, func(i int) {
		id := newSandboxID()
		pod := fmt.Sprintf("steady-lv-%d", i)
		d.MustCreate(id, pod, "e2e")
		mustOK(t, "StartVM "+pod, d.StartVM(id, optsStart))
		if _, err := agentCallRaw(filepath.Join(d.Dirs.PodsDir, id, "agent.ttrpc"), "grpc.Health", "Check", nil,
			10*time.Second, nil); err != nil {
			t.Errorf("%s: Health/Check through the relay: %v", pod, err)
		}
		mustOK(t, "StopVM "+pod, d.StopVM(id))
	})
}

func keys(m map[string]string) []string {
	var k []string
	for n := range m {
		k = append(k, n)
	}
	return k
}

func scLibvirtMissingImage(t *T) {
	d := t.startLibvirt()
	id := newSandboxID()
	ann := kataAnnotations("img", "default")
	ann[annImage] = "no-such-image.qcow2"
	mustOK(t, "CreateVM", createWith(d, id, ann))
	err := d.StartVM(id, optsStart)
	expectCode(t, "StartVM with a missing image", err, 3,
		msgContains("Can't retrieve volume no-such-image.qcow2 in pool default"), "")
	if ents, _ := os.ReadDir(d.Dirs.FakeDir); len(ents) != 0 {
		t.Errorf("-data-dir not empty after the failed start: %v", ents)
	}
	mustOK(t, "StopVM", d.StopVM(id))
}

func scLibvirtBadSettings(t *T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"-pool-name", "nope"}, `can't find storage pool "nope" (LIBVIRT_POOL)`},
		{[]string{"-network-name", "nope"}, `can't find network "nope" (LIBVIRT_NET)`},
		{[]string{"-cpuset", "1,"}, "invalid CPUSet format: 1,"},
		{[]string{"-launch-security", "sev2"}, "[sev2] is not a known launch security setting"},
		{[]string{"-uri", "test:///no/such/node.xml"}, "connecting to libvirt at test:///no/such/node.xml (LIBVIRT_URI)"},
	}
	for i, c := range cases {
		dirs := t.defaultDirs()
		dirs.Libvirt = true
		dirs.Sock = filepath.Join(t.dir, "bad"+string(rune('a'+i))+".sock")
		d, err := t.spawnDaemon(dirs, c.args...)
		if err != nil {
			t.Fatalf("spawn: %v", err)
		}
		if err := d.WaitExit(15 * time.Second); err != nil {
			t.Errorf("%v: daemon kept running", c.args)
			d.Kill()
			continue
		}
		if d.exitCode != 1 || !logHas(d, c.want) {
			t.Errorf("%v: exit %d, log %q; want exit 1 and %q", c.args, d.exitCode, tailFile(d.LogPath, 2), c.want)
		}
	}
}

// Orphan GC (DECISIONS 16) on the fake cloud: an old instance with this node's marker whose
// sandbox nobody knows is deleted at start-up; a young one, an unmarked one and one whose
// sandbox the store knows are kept.
func scOrphanGC(t *T) {
	dirs := t.defaultDirs()
	if err := os.MkdirAll(dirs.FakeDir, 0o755); err != nil {
		t.Fatalf("%v", err)
	}
	old := time.Now().Add(-time.Hour)
	put := func(name, rec string, mtime time.Time) string {
		p := filepath.Join(dirs.FakeDir, name)
		if err := os.WriteFile(p, []byte(rec), 0o600); err != nil {
			t.Fatalf("%v", err)
		}
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatalf("%v", err)
		}
		return p
	}
	orphanID := newSandboxID()
	orphan := put("podvm-orphan-"+orphanID[:8], `{"id":"x","name":"n","sandbox":"`+orphanID+`"}`, old)
	young := put("podvm-young-12345678", `{"id":"x","name":"n","sandbox":"`+newSandboxID()+`"}`, time.Now())
	unmarked := put("podvm-unmarked-1234", `{"id":"x","name":"n"}`, old)
	// One whose record cannot be looked at (its sandbox directory is a symlink loop: ELOOP,
	// not "no such file"): nothing proves it an orphan, so it stays.
	unsureID := newSandboxID()
	unsure := put("podvm-unsure-"+unsureID[:8], `{"id":"x","name":"n","sandbox":"`+unsureID+`"}`, old)
	if err := os.MkdirAll(dirs.PodsDir, 0o700); err != nil {
		t.Fatalf("%v", err)
	}
	loop := filepath.Join(dirs.PodsDir, unsureID)
	if err := os.Symlink(loop, loop); err != nil {
		t.Fatalf("%v", err)
	}

	d := t.StartDaemonDirs(dirs)
	if !waitFor(10*time.Second, func() bool { return !exists(orphan) }) {
		t.Fatalf("orphan %s was not collected; log: %q", orphan, tailFile(d.LogPath, 5))
	}
	if !logHas(d, "deleted orphan instance podvm-orphan-"+orphanID[:8]) {
		t.Errorf("the deletion of the orphan is not logged")
	}
	if !exists(young) || !exists(unmarked) {
		t.Errorf("GC deleted a young (%v) or unmarked (%v) instance", !exists(young), !exists(unmarked))
	}
	if !waitFor(5*time.Second, func() bool { return logHas(d, "cannot tell whether sandbox "+unsureID) }) || !exists(unsure) {
		t.Errorf("GC deleted (or never weighed) an instance whose record it could not check: present %v", exists(unsure))
	}
	os.Remove(loop)
	os.Remove(unsure)

	// A running pod of this daemon survives a restart's GC pass even when its VM is old.
	id := newSandboxID()
	d.MustCreate(id, "kept", "default")
	mustOK(t, "StartVM", d.StartVM(id, optsStart))
	inst := filepath.Join(dirs.FakeDir, instanceName("kept", id))
	os.Chtimes(inst, old, old)
	mustOK(t, "SIGTERM", d.Signal(syscall.SIGTERM))
	if err := d.WaitExit(15 * time.Second); err != nil {
		t.Fatalf("%v", err)
	}
	orphan2ID := newSandboxID()
	orphan2 := put("podvm-orphan-"+orphan2ID[:8], `{"id":"x","name":"n","sandbox":"`+orphan2ID+`"}`, old)
	d2 := t.StartDaemonDirs(dirs)
	if !waitFor(10*time.Second, func() bool { return !exists(orphan2) }) {
		t.Fatalf("second orphan was not collected")
	}
	if !exists(inst) {
		t.Errorf("GC deleted the VM of a sandbox the store knows")
	}
	mustOK(t, "StopVM", d2.StopVM(id))
}
