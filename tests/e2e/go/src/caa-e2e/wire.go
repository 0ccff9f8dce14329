package main

// Raw ttrpc framing (protocols.md §1.1) and a tiny protobuf encoder/decoder
// for the ttrpc Request/Response/Status envelopes (§1.4). Used by the
// scenarios that must look at exact bytes or send frames no well-behaved
// client would send.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

const (
	frameHeaderLen  = 10
	msgTypeRequest  = 0x01
	msgTypeResponse = 0x02
	maxFrameData    = 4 << 20
)

type frame struct {
	Length   uint32
	StreamID uint32
	Type     byte
	Flags    byte
	Data     []byte
}

func (f frame) String() string {
	return fmt.Sprintf("frame{len=%d stream=%d type=%d flags=%d data=% x}", f.Length, f.StreamID, f.Type, f.Flags, f.Data)
}

func frameHeader(length, stream uint32, typ, flags byte) []byte {
	h := make([]byte, frameHeaderLen)
	binary.BigEndian.PutUint32(h[0:4], length)
	binary.BigEndian.PutUint32(h[4:8], stream)
	h[8] = typ
	h[9] = flags
	return h
}

func encodeFrame(stream uint32, typ, flags byte, data []byte) []byte {
	return append(frameHeader(uint32(len(data)), stream, typ, flags), data...)
}

// readFrame reads one complete frame, giving up at the deadline.
func readFrame(c net.Conn, timeout time.Duration) (frame, error) {
	var f frame
	if err := c.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return f, err
	}
	defer c.SetReadDeadline(time.Time{})
	h := make([]byte, frameHeaderLen)
	if _, err := io.ReadFull(c, h); err != nil {
		return f, fmt.Errorf("reading frame header: %w", err)
	}
	f.Length = binary.BigEndian.Uint32(h[0:4])
	f.StreamID = binary.BigEndian.Uint32(h[4:8])
	f.Type = h[8]
	f.Flags = h[9]
	if f.Length > 16<<20 {
		return f, fmt.Errorf("implausible frame length %d (header % x)", f.Length, h)
	}
	f.Data = make([]byte, f.Length)
	if _, err := io.ReadFull(c, f.Data); err != nil {
		return f, fmt.Errorf("reading %d bytes of frame data: %w", f.Length, err)
	}
	return f, nil
}

// ---- protobuf encoding helpers ----

func appendVarint(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

func appendBytesField(b []byte, num int, v []byte) []byte {
	b = appendVarint(b, uint64(num)<<3|2)
	b = appendVarint(b, uint64(len(v)))
	return append(b, v...)
}

// encodeRequest builds a ttrpc Request message the way a proto3 encoder
// would: fields in number order, empty ones omitted.
func encodeRequest(service, method string, payload []byte, timeoutNano int64) []byte {
	var b []byte
	if service != "" {
		b = appendBytesField(b, 1, []byte(service))
	}
	if method != "" {
		b = appendBytesField(b, 2, []byte(method))
	}
	if len(payload) > 0 {
		b = appendBytesField(b, 3, payload)
	}
	if timeoutNano != 0 {
		b = appendVarint(b, 4<<3|0)
		b = appendVarint(b, uint64(timeoutNano))
	}
	return b
}

// ---- protobuf decoding helpers ----

type pbField struct {
	Num     int
	Wire    int
	Varint  uint64
	Bytes   []byte
	Fixed64 uint64
	Fixed32 uint32
}

func readVarint(b []byte) (uint64, int, error) {
	var v uint64
	for i := 0; i < len(b) && i < 10; i++ {
		v |= uint64(b[i]&0x7f) << (7 * uint(i))
		if b[i] < 0x80 {
			return v, i + 1, nil
		}
	}
	return 0, 0, errors.New("truncated or overlong varint")
}

func decodeFields(b []byte) ([]pbField, error) {
	var out []pbField
	for len(b) > 0 {
		key, n, err := readVarint(b)
		if err != nil {
			return nil, err
		}
		b = b[n:]
		f := pbField{Num: int(key >> 3), Wire: int(key & 7)}
		if f.Num == 0 {
			return nil, errors.New("field number 0")
		}
		switch f.Wire {
		case 0:
			f.Varint, n, err = readVarint(b)
			if err != nil {
				return nil, err
			}
			b = b[n:]
		case 1:
			if len(b) < 8 {
				return nil, errors.New("truncated fixed64")
			}
			f.Fixed64 = binary.LittleEndian.Uint64(b)
			b = b[8:]
		case 2:
			l, n, err := readVarint(b)
			if err != nil {
				return nil, err
			}
			b = b[n:]
			if uint64(len(b)) < l {
				return nil, errors.New("truncated length-delimited field")
			}
			f.Bytes = b[:l]
			b = b[l:]
		case 5:
			if len(b) < 4 {
				return nil, errors.New("truncated fixed32")
			}
			f.Fixed32 = binary.LittleEndian.Uint32(b)
			b = b[4:]
		default:
			return nil, fmt.Errorf("unsupported wire type %d", f.Wire)
		}
		out = append(out, f)
	}
	return out, nil
}

// rpcResponse is a decoded ttrpc Response envelope.
type rpcResponse struct {
	HasStatus bool
	Code      int32
	Message   string
	Payload   []byte
}

func decodeResponse(data []byte) (rpcResponse, error) {
	var r rpcResponse
	fields, err := decodeFields(data)
	if err != nil {
		return r, fmt.Errorf("decoding Response: %v", err)
	}
	for _, f := range fields {
		switch {
		case f.Num == 1 && f.Wire == 2:
			r.HasStatus = true
			sf, err := decodeFields(f.Bytes)
			if err != nil {
				return r, fmt.Errorf("decoding Status: %v", err)
			}
			for _, s := range sf {
				switch {
				case s.Num == 1 && s.Wire == 0:
					r.Code = int32(s.Varint)
				case s.Num == 2 && s.Wire == 2:
					r.Message = string(s.Bytes)
				}
			}
		case f.Num == 2 && f.Wire == 2:
			r.Payload = f.Bytes
		}
	}
	return r, nil
}

// rawConn is a hand-driven ttrpc connection.
type rawConn struct {
	net.Conn
}

func dialRaw(sock string) (*rawConn, error) {
	c, err := net.DialTimeout("unix", sock, 5*time.Second)
	if err != nil {
		return nil, err
	}
	return &rawConn{c}, nil
}

func (c *rawConn) send(b []byte) error {
	if err := c.SetWriteDeadline(time.Now().Add(10 * time.Second)); err != nil {
		return err
	}
	defer c.SetWriteDeadline(time.Time{})
	_, err := c.Write(b)
	return err
}

// expectResponse reads one frame and checks it is a Response for stream.
func (c *rawConn) expectResponse(stream uint32, timeout time.Duration) (frame, rpcResponse, error) {
	f, err := readFrame(c, timeout)
	if err != nil {
		return f, rpcResponse{}, err
	}
	if f.Type != msgTypeResponse {
		return f, rpcResponse{}, fmt.Errorf("expected a Response frame (type 2), got %v", f)
	}
	if f.StreamID != stream {
		return f, rpcResponse{}, fmt.Errorf("expected the response on stream %d, got %v", stream, f)
	}
	if f.Flags != 0 {
		return f, rpcResponse{}, fmt.Errorf("response frame flags must be 0, got %v", f)
	}
	r, err := decodeResponse(f.Data)
	if err != nil {
		return f, r, fmt.Errorf("%v in %v", err, f)
	}
	return f, r, nil
}
