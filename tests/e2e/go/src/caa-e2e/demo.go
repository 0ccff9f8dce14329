package main

// The kata-shim stand-in of `make demo` (tests/demo/run.sh): one pod through the daemon's
// real sockets, each step printed with its duration. Steps whose daemon side has not landed
// yet are reported as such instead of failing.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

type demoStep struct {
	name string
	run  func() (string, error) // detail on success
	todo string                 // non-empty: not available yet, and why
}

// serveForwarder runs the stand-in pod VM for make demo, plain TCP, until killed.
func serveForwarder(port string) int {
	f, err := StartForwarderAt("0.0.0.0:"+port, "", false)
	if err != nil {
		fmt.Printf("stand-in forwarder: %v\n", err)
		return 1
	}
	f.noRecord = true
	fmt.Printf("stand-in forwarder listening on %s\n", f.ln.Addr())
	select {}
}

func runDemo(sock, netns string) int {
	id := newSandboxID()
	pod, ns := "demo-nginx", "default"
	var agentSock string
	ann := kataAnnotations(pod, ns)
	steps := []demoStep{
		{name: "CreateVM", run: func() (string, error) {
			resp := &CreateVMResponse{}
			err := callSock(sock, hypervisorService, "CreateVM",
				&CreateVMRequest{Id: id, Annotations: ann, NetworkNamespacePath: netns}, resp, optsPlain)
			agentSock = resp.AgentSocketPath
			return "agent socket " + agentSock, err
		}},
		{name: "StartVM", run: func() (string, error) {
			err := callSock(sock, hypervisorService, "StartVM", &StartVMRequest{Id: id}, &StartVMResponse{},
				callOpts{ServerTimeout: 600 * time.Second, ClientWait: 60 * time.Second})
			if err != nil {
				return "", err
			}
			vmid := &GetInfoResponse{}
			err = callSock(sock, podvminfoService, "GetInfo", &GetInfoRequest{PodName: pod, PodNamespace: ns},
				vmid, optsPlain)
			return "VM " + instanceName(pod, id) + " (id " + vmid.VMID + ")", err
		}},
		{name: "agent Health/Check through the proxy", run: func() (string, error) {
			resp, err := agentCallRaw(agentSock, "grpc.Health", "Check", nil, 30*time.Second, nil)
			if err == nil && string(resp) != "\x08\x01" {
				err = fmt.Errorf("unexpected HealthCheckResponse %x", resp)
			}
			return "SERVING", err
		}},
		{name: "agent CreateSandbox through the proxy", run: func() (string, error) {
			// CreateSandboxRequest{hostname: 1, sandbox_id: 4}
			req := append([]byte{0x0a, byte(len(pod))}, pod...)
			req = append(req, 0x22, byte(len(id)))
			req = append(req, id...)
			_, err := agentCallRaw(agentSock, "grpc.AgentService", "CreateSandbox", req, 300*time.Second, nil)
			return "sandbox created in the pod VM's agent", err
		}},
		{name: "pod VM builds its side of the tunnel", run: func() (string, error) {
			return demoMirror(instanceName(pod, id))
		}},
		{name: "ping the pod IP from the node over VXLAN", run: func() (string, error) {
			w := os.Getenv("DEMO_WORKER_NETNS")
			if w == "" {
				return "", fmt.Errorf("DEMO_WORKER_NETNS is not set")
			}
			out, err := exec.Command("timeout", "20", "ip", "netns", "exec", w, "ping", "-c", "3", "-i", "0.2", "-W", "2",
				os.Getenv("DEMO_POD_IP")).CombinedOutput()
			if err != nil {
				return "", fmt.Errorf("%v: %s", err, out)
			}
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			return "answered from the pod VM: " + lines[len(lines)-1], nil
		}},
		{name: "StopVM", run: func() (string, error) {
			return "VM and its volumes deleted", callSock(sock, hypervisorService, "StopVM", &StopVMRequest{Id: id},
				&StopVMResponse{}, optsPlain)
		}},
	}
	done, todo := 0, 0
	for i, s := range steps {
		label := fmt.Sprintf("demo: [%d/%d] %-40s", i+1, len(steps), s.name)
		if s.todo != "" {
			fmt.Printf("%s not available yet: %s\n", label, s.todo)
			todo++
			continue
		}
		began := time.Now()
		detail, err := s.run()
		took := time.Since(began).Round(time.Millisecond)
		if err != nil {
			fmt.Printf("%s FAILED after %v: %s\n", label, took, describeErr(err))
			return 1
		}
		fmt.Printf("%s ok %8v  %s\n", label, took, detail)
		done++
	}
	fmt.Printf("demo: %d steps done, %d not available yet\n", done, todo)
	return 0
}

// demoMirror plays the pod VM's forwarder at boot: reads apf.json from the cidata ISO the
// libvirt provider wrote and builds the VM side of the pod network (mirror.go).
func demoMirror(vm string) (string, error) {
	iso := filepath.Join(os.Getenv("DEMO_DATA_DIR"), vm+"-cloudinit.iso")
	dir, err := os.MkdirTemp("", "demo-iso-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	if out, err := exec.Command("xorriso", "-osirrox", "on", "-indev", iso, "-extract", "/", dir).CombinedOutput(); err != nil {
		return "", fmt.Errorf("reading %s: %v: %s", iso, err, out)
	}
	doc, err := os.ReadFile(filepath.Join(dir, "user-data"))
	if err != nil {
		return "", err
	}
	files, err := parseCloudConfig(doc)
	if err != nil {
		return "", err
	}
	for _, f := range files {
		if f.Path == "/run/peerpod/apf.json" && f.Content != nil {
			if err := BuildMirror([]byte(*f.Content), os.Getenv("DEMO_VM_NETNS"), os.Getenv("DEMO_VMPOD_NETNS")); err != nil {
				return "", err
			}
			return "vxlan0 -> eth0 in " + filepath.Base(os.Getenv("DEMO_VMPOD_NETNS")) + " from apf.json", nil
		}
	}
	return "", fmt.Errorf("no apf.json in %s", iso)
}
