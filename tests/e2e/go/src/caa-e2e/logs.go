package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// scLogLines: the Go daemon's key lines that tooling greps for are kept verbatim, every
// lifecycle event carries its key=value fields, and LOG_LEVEL filters.
func scLogLines(t *T) {
	d := t.StartDaemon()
	id := newSandboxID()
	pod, ns := "web-logs-0", "logs-ns"
	vm := instanceName(pod, id)
	d.MustCreate(id, pod, ns)
	mustOK(t, "StartVM", d.StartVM(id, optsStart))
	mustOK(t, "StopVM", d.StopVM(id))
	b, err := os.ReadFile(d.LogPath)
	if err != nil {
		t.Fatalf("daemon log: %v", err)
	}
	log := string(b)
	// CAA's test/e2e getPodvmName regex, and the VM name it derives.
	m := regexp.MustCompile(`create a sandbox ([0-9a-f]{64}) for pod (\S+) in namespace (\S+)`).FindStringSubmatch(log)
	if m == nil || m[1] != id || m[2] != pod || m[3] != ns {
		t.Errorf("no Go-compatible create line for %s (%s/%s): %q", id, ns, pod, m)
	} else if got := "podvm-" + m[2] + "-" + m[1][:8]; got != vm {
		t.Errorf("VM name derived from the create line %q, want %q", got, vm)
	}
	want := []*regexp.Regexp{
		regexp.MustCompile(`INFO \[adaptor\] create a sandbox .* sandbox=` + id + ` pod=` + ns + `/` + pod + ` netns=`),
		regexp.MustCompile(`INFO \[adaptor\] StartVM: .* sandbox=` + id + ` pod=` + ns + `/` + pod + ` vm=` + vm +
			` instance=\S+ duration_ms=\d+\n`),
		regexp.MustCompile(`INFO \[adaptor\] StopVM: deleting sandbox=` + id + ` pod=` + ns + `/` + pod + ` vm=` + vm + `\n`),
		regexp.MustCompile(`INFO \[adaptor\] StopVM: sandbox deleted sandbox=` + id + ` pod=` + ns + `/` + pod +
			` duration_ms=\d+\n`),
	}
	for _, re := range want {
		if !re.MatchString(log) {
			t.Errorf("daemon log has no line matching %s", re)
		}
	}
	// A failure's reason is one quoted value, so the line still splits into fields.
	bad := newSandboxID()
	ann := kataAnnotations(pod+"-2", ns)
	ann[annInitdata] = "algorithm = \"sha256\"\nversion = \"0.1.0\"\n[data\n"
	if err := createWith(d, bad, ann); err == nil {
		t.Errorf("CreateVM with broken initdata succeeded")
	}
	b, _ = os.ReadFile(d.LogPath)
	if !regexp.MustCompile(`WARN \[adaptor\] CreateVM failed sandbox=` + bad + ` error="initdata: ([^"\\]|\\.)*"\n`).Match(b) {
		t.Errorf("no CreateVM failed line with a quoted error for %s: %s", bad, tailFile(d.LogPath, 3))
	}

	// A pod name with a space cannot forge fields: the pod= value is quoted.
	forged := newSandboxID()
	if err := createWith(d, forged, kataAnnotations("web vm=podvm-forged", ns)); err != nil {
		t.Errorf("CreateVM with a spaced pod name: %s", describeErr(err))
	}
	b, _ = os.ReadFile(d.LogPath)
	if !strings.Contains(string(b), `sandbox=`+forged+` pod="`+ns+`/web vm=podvm-forged" netns=`) {
		t.Errorf("the pod= field of a spaced pod name is not one quoted value: %s", tailFile(d.LogPath, 2))
	}
	d.StopVM(forged)

	// LOG_LEVEL=warn: no INFO lines, warnings still come.
	t.env = append(t.env, "LOG_LEVEL=warn")
	dirs := t.defaultDirs()
	dirs.Sock = filepath.Join(t.dir, "h2.sock")
	dirs.PodsDir = filepath.Join(t.dir, "p2")
	d2 := t.StartDaemonDirs(dirs, "-pause-image", "ignored")
	id2 := newSandboxID()
	d2.MustCreate(id2, pod, ns)
	mustOK(t, "StopVM", d2.StopVM(id2))
	b2, _ := os.ReadFile(d2.LogPath)
	if strings.Contains(string(b2), " INFO [") {
		t.Errorf("LOG_LEVEL=warn still logs INFO lines: %s", tailFile(d2.LogPath, 5))
	}
	if !strings.Contains(string(b2), " WARN [adaptor] PAUSE_IMAGE") {
		t.Errorf("LOG_LEVEL=warn lost the PAUSE_IMAGE warning: %s", tailFile(d2.LogPath, 5))
	}
}
