package main

// Hand-written protobuf message types for the two services the daemon
// serves on its hypervisor socket. They carry gogo/protobuf struct tags so
// that github.com/gogo/protobuf/proto (the codec used by containerd/ttrpc)
// can encode and decode them by reflection. Field numbers follow
// protocols.md §2.2 (hypervisor.Hypervisor) and §6.1 (podvminfo.PodVMInfo).

import (
	"github.com/gogo/protobuf/proto"
)

const (
	hypervisorService = "hypervisor.Hypervisor"
	podvminfoService  = "podvminfo.PodVMInfo"
)

// ---- hypervisor.Hypervisor ----

type VersionRequest struct {
	Version string `protobuf:"bytes,1,opt,name=version,proto3"`
}

func (m *VersionRequest) Reset()         { *m = VersionRequest{} }
func (m *VersionRequest) String() string { return proto.CompactTextString(m) }
func (*VersionRequest) ProtoMessage()    {}

type VersionResponse struct {
	Version string `protobuf:"bytes,1,opt,name=version,proto3"`
}

func (m *VersionResponse) Reset()         { *m = VersionResponse{} }
func (m *VersionResponse) String() string { return proto.CompactTextString(m) }
func (*VersionResponse) ProtoMessage()    {}

type CreateVMRequest struct {
	Id                   string            `protobuf:"bytes,1,opt,name=id,proto3"`
	Annotations          map[string]string `protobuf:"bytes,2,rep,name=annotations,proto3" protobuf_key:"bytes,1,opt,name=key,proto3" protobuf_val:"bytes,2,opt,name=value,proto3"`
	NetworkNamespacePath string            `protobuf:"bytes,3,opt,name=networkNamespacePath,proto3"`
}

func (m *CreateVMRequest) Reset()         { *m = CreateVMRequest{} }
func (m *CreateVMRequest) String() string { return proto.CompactTextString(m) }
func (*CreateVMRequest) ProtoMessage()    {}

type CreateVMResponse struct {
	AgentSocketPath string `protobuf:"bytes,1,opt,name=agentSocketPath,proto3"`
}

func (m *CreateVMResponse) Reset()         { *m = CreateVMResponse{} }
func (m *CreateVMResponse) String() string { return proto.CompactTextString(m) }
func (*CreateVMResponse) ProtoMessage()    {}

type StartVMRequest struct {
	Id string `protobuf:"bytes,1,opt,name=id,proto3"`
}

func (m *StartVMRequest) Reset()         { *m = StartVMRequest{} }
func (m *StartVMRequest) String() string { return proto.CompactTextString(m) }
func (*StartVMRequest) ProtoMessage()    {}

type StartVMResponse struct{}

func (m *StartVMResponse) Reset()         { *m = StartVMResponse{} }
func (m *StartVMResponse) String() string { return proto.CompactTextString(m) }
func (*StartVMResponse) ProtoMessage()    {}

type StopVMRequest struct {
	Id string `protobuf:"bytes,1,opt,name=id,proto3"`
}

func (m *StopVMRequest) Reset()         { *m = StopVMRequest{} }
func (m *StopVMRequest) String() string { return proto.CompactTextString(m) }
func (*StopVMRequest) ProtoMessage()    {}

type StopVMResponse struct{}

func (m *StopVMResponse) Reset()         { *m = StopVMResponse{} }
func (m *StopVMResponse) String() string { return proto.CompactTextString(m) }
func (*StopVMResponse) ProtoMessage()    {}

// ---- podvminfo.PodVMInfo ----

type GetInfoRequest struct {
	PodName      string `protobuf:"bytes,1,opt,name=PodName,proto3"`
	PodNamespace string `protobuf:"bytes,2,opt,name=PodNamespace,proto3"`
	Wait         bool   `protobuf:"varint,3,opt,name=Wait,proto3"`
}

func (m *GetInfoRequest) Reset()         { *m = GetInfoRequest{} }
func (m *GetInfoRequest) String() string { return proto.CompactTextString(m) }
func (*GetInfoRequest) ProtoMessage()    {}

type GetInfoResponse struct {
	VMID string `protobuf:"bytes,1,opt,name=VMID,proto3"`
}

func (m *GetInfoResponse) Reset()         { *m = GetInfoResponse{} }
func (m *GetInfoResponse) String() string { return proto.CompactTextString(m) }
func (*GetInfoResponse) ProtoMessage()    {}
