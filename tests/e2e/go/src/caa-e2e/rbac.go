package main

import (
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// What each kind of call the fake API server saw needs in RBAC terms.
var kubeCallRights = map[string][2]string{
	"node-get": {"nodes", "get"}, "node-patch": {"nodes", "patch"}, "status-patch": {"nodes/status", "patch"},
	"pod-get": {"pods", "get"}, "pod-list": {"pods", "list"}, "sa-get": {"serviceaccounts", "get"},
	"secret-get":     {"secrets", "get"},
	"peerpod-create": {"peerpods.confidentialcontainers.org", "create"},
	"peerpod-patch":  {"peerpods.confidentialcontainers.org", "patch"},
}

// rbacRights reads the rules of config/base/rbac.yaml (flow lists, as we write them) into
// "resource verb" pairs; resources of another group than the core one are "resource.group".
func rbacRights(path string) (map[string]bool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	rights := map[string]bool{}
	list := func(s string) []string {
		var out []string
		for _, x := range strings.Split(strings.Trim(strings.TrimSpace(s), "[]"), ",") {
			if x = strings.Trim(strings.TrimSpace(x), `"'`); x != "" {
				out = append(out, x)
			}
		}
		return out
	}
	re := regexp.MustCompile(`(?m)^- apiGroups: (\[[^\]]*\])\n  resources: (\[[^\]]*\])\n  verbs: (\[[^\]]*\])`)
	for _, m := range re.FindAllStringSubmatch(string(b), -1) {
		groups := list(m[1])
		if strings.TrimSpace(m[1]) == `[""]` {
			groups = []string{""}
		}
		for _, g := range groups {
			for _, r := range list(m[2]) {
				if g != "" {
					r += "." + g
				}
				for _, v := range list(m[3]) {
					rights[r+" "+v] = true
				}
			}
		}
	}
	return rights, nil
}

// scKubeRBAC: the ServiceAccount's rights in config/base cover every call the daemons of
// this run made against the fake API server, and grant nothing the daemon never uses.
func scKubeRBAC(t *T) {
	// The repository holding the daemon under test (build/test/ or build/test/san/).
	path := ""
	for dir := filepath.Dir(t.daemonB); dir != filepath.Dir(dir); dir = filepath.Dir(dir) {
		if p := filepath.Join(dir, "config", "base", "rbac.yaml"); exists(p) {
			path = p
			break
		}
	}
	if path == "" {
		t.Fatalf("no config/base/rbac.yaml above %s", t.daemonB)
	}
	rights, err := rbacRights(path)
	if err != nil {
		t.Fatalf("%v", err)
	}
	kubeCallsMu.Lock()
	seen := map[string]bool{}
	for c := range kubeCallsSeen {
		seen[c] = true
	}
	kubeCallsMu.Unlock()
	if len(seen) == 0 {
		t.Fatalf("no Kubernetes API call was seen: run the kube_ scenarios before this one")
	}
	used := map[string]bool{}
	var missing []string
	for c := range seen {
		r, ok := kubeCallRights[c]
		if !ok {
			t.Errorf("unclassified API call %q", c)
			continue
		}
		used[r[0]+" "+r[1]] = true
		if !rights[r[0]+" "+r[1]] {
			missing = append(missing, c+" needs "+r[1]+" on "+r[0])
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("%s lacks rights the daemon uses: %v", path, missing)
	}
	// Least rights: "list" on secrets and service accounts is kept as the Go chart grants it
	// (kubelet-style lookups by name need only get); anything else unused is a finding.
	var extra []string
	for r := range rights {
		if !used[r] && r != "secrets list" && r != "serviceaccounts list" {
			extra = append(extra, r)
		}
	}
	sort.Strings(extra)
	if len(extra) > 0 {
		t.Errorf("%s grants rights no call of this run used: %v", path, extra)
	}
	t.Logf("calls seen: %d kinds; rights: %d", len(seen), len(rights))
}
