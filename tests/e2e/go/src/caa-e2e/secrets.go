package main

// Secrets never reach a log (DECISIONS 13). Every scenario of a run contributes: the runner
// keeps each daemon log (collectEvidence, after the scenario), and the scenarios and fakes note
// every secret they hand the daemon or see it make (client secret, access tokens, client
// assertions, TLS keys, initdata bodies, policy text, Kubernetes bearer tokens, registry
// credentials of image pull secrets). The last scenario of a suite
// (secrets_never_logged, node_secrets_never_logged) searches all the logs for all of them.

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
)

var evidence struct {
	mu      sync.Mutex
	logs    map[string][]byte // "<scenario> daemon #n" -> log
	secrets map[string]string // secret -> what it is
}

func noteSecret(what, s string) {
	if len(s) < 6 {
		return
	}
	evidence.mu.Lock()
	defer evidence.mu.Unlock()
	if evidence.secrets == nil {
		evidence.secrets = map[string]string{}
	}
	evidence.secrets[s] = what
}

// notePEMKey records the base64 lines of a PEM private key (any one would be a leak).
func notePEMKey(what, pem string) {
	for _, l := range strings.Split(pem, "\n") {
		if l = strings.TrimSpace(l); len(l) >= 32 && !strings.HasPrefix(l, "-----") {
			noteSecret(what, l)
		}
	}
}

// noteInitdataSeeds records the seed initdata documents the scenarios pass around.
func noteInitdataSeeds() {
	seeds, _ := filepath.Glob("tests/data/initdata/*.toml")
	for _, f := range seeds {
		if b, err := os.ReadFile(f); err == nil {
			noteSecret("an initdata body", strings.TrimSpace(string(b)))
		}
	}
}

// collectEvidence keeps the scenario's daemon logs and the TLS client keys it left.
func collectEvidence(t *T) {
	filepath.Walk(t.dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() && info.Name() == "client.key" {
			if b, err := os.ReadFile(p); err == nil {
				notePEMKey("the daemon's TLS client key", string(b))
			}
		}
		return nil
	})
	t.mu.Lock()
	ds := append([]*Daemon(nil), t.daemons...)
	t.mu.Unlock()
	evidence.mu.Lock()
	defer evidence.mu.Unlock()
	if evidence.logs == nil {
		evidence.logs = map[string][]byte{}
	}
	for _, d := range ds {
		if b, err := os.ReadFile(d.LogPath); err == nil {
			evidence.logs[fmt.Sprintf("%s daemon #%d", t.name, d.Index)] = b
		}
	}
}

// scSecrets fails for any noted secret in any kept log; kinds must all have been noted, or
// the check would prove nothing about them.
func scSecrets(t *T, kinds []string) {
	evidence.mu.Lock()
	defer evidence.mu.Unlock()
	if len(evidence.logs) < 5 {
		t.Fatalf("nothing to check: %d daemon logs collected (run it after the other scenarios)", len(evidence.logs))
	}
	have := map[string]bool{}
	for _, what := range evidence.secrets {
		have[what] = true
	}
	for _, k := range kinds {
		if !have[k] {
			t.Errorf("no %s was collected: the check would miss it", k)
		}
	}
	names := make([]string, 0, len(evidence.logs))
	total := 0
	for name, b := range evidence.logs {
		names = append(names, name)
		total += len(b)
	}
	sort.Strings(names)
	for _, name := range names {
		log := evidence.logs[name]
		for s, what := range evidence.secrets {
			if bytes.Contains(log, []byte(s)) {
				t.Errorf("%s: the log contains %s (%q)", name, what, abbrev(s))
			}
		}
	}
	t.Logf("%d logs (%d KiB) checked for %d secrets", len(names), total>>10, len(evidence.secrets))
}

func secretsScenario() []scenario {
	return []scenario{{"secrets_never_logged", func(t *T) {
		scSecrets(t, []string{"the Azure client secret", "an access token", "the daemon's TLS client key",
			"a pod VM's TLS server key", "an initdata body", "a Kubernetes bearer token", "a registry credential"})
	}}}
}
