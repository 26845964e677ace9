package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// FormatVersion is the first byte of every record. It is part of the on-disk
// format: a reader refuses any other value. Bump it, and keep a decoder for the
// old value, when the layout below changes.
const FormatVersion byte = 1

// Limits that every record obeys. They are part of the format: the decoder
// rejects a record that breaks one, so a corrupt length can never make a reader
// allocate without bound.
const (
	IDBytesMax     = 64        // request, ref, user and SKU ids: 1..64 bytes (user and ref may be empty)
	ItemsMax       = 64        // items in one record
	QtyMax         = 1_000_000 // |qty| of a sale, reservation, return or restock item
	TotalMax       = 1_000_000_000_000
	LimitMax       = 1_000_000 // limit_per_user
	RecordBytesMax = 1 + 1 + 10 + 3*(1+IDBytesMax) + 8 + 10 + 10 + 1 + ItemsMax*(1+IDBytesMax+10) + 4
)

// Kind says what a record did. The values are part of the on-disk format.
type Kind uint8

// Record kinds. The names are those of the stock_flow.kind column.
const (
	KindSetTotal Kind = 1 // creates a SKU or changes its total (signed delta) and per-user limit
	KindRestock  Kind = 2 // adds to the total
	KindDeduct   Kind = 3 // one-phase sale: available -> sold
	KindReserve  Kind = 4 // available -> reserved, until ExpiresAtMs
	KindConfirm  Kind = 5 // reserved -> sold, for reservation RequestID
	KindCancel   Kind = 6 // reserved -> available, by the client
	KindExpire   Kind = 7 // reserved -> available, by the clock
	KindReturn   Kind = 8 // sold -> available, for sale RefID, by return RequestID
	kindEnd      Kind = 9
)

var kindNames = [...]string{"", "set_total", "restock", "deduct", "reserve", "confirm", "cancel", "expire", "return"}

func (k Kind) String() string {
	if k == 0 || k >= kindEnd {
		return fmt.Sprintf("kind(%d)", uint8(k))
	}
	return kindNames[k]
}

// Item is one SKU's part of a record. Qty is positive, except for KindSetTotal,
// where it is the signed change of the total (and may be 0 when only the limit
// changes).
type Item struct {
	SKU string
	Qty int64
}

// Record is one logged change. It holds effects, not commands: replaying a
// record never re-decides anything, it only applies what was decided.
type Record struct {
	Kind      Kind
	TimeMs    int64  // the engine's clock when the change was decided (Unix ms)
	RequestID string // the id the change was made under (docs/sync.md: stock_flow.request_id)
	RefID     string // for KindReturn: the sale returned from; empty otherwise
	UserID    string // may be empty
	BodyHash  uint64 // hash of the request body, for idempotency conflicts after recovery
	// ExpiresAtMs is the reservation deadline (KindReserve only, else 0).
	ExpiresAtMs int64
	// LimitPerUser is the SKU's limit after the change (KindSetTotal only, else 0).
	LimitPerUser int64
	Items        []Item
}

// ErrCorrupt is wrapped by every decoding error.
var ErrCorrupt = errors.New("wal: corrupt record")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// timeMsMax bounds the times in a record (the decoder's uvarint bound).
const timeMsMax = 1 << 62

// Validate checks the record against the format's rules. Encode calls it, so
// no record that Decode would refuse is ever written.
func (r *Record) Validate() error {
	if r.Kind == 0 || r.Kind >= kindEnd {
		return fmt.Errorf("%w: kind %d", ErrCorrupt, r.Kind)
	}
	if r.TimeMs < 0 || r.ExpiresAtMs < 0 || r.TimeMs > timeMsMax || r.ExpiresAtMs > timeMsMax {
		return fmt.Errorf("%w: time out of range", ErrCorrupt)
	}
	if r.Kind == KindReserve && r.ExpiresAtMs == 0 {
		return fmt.Errorf("%w: reserve without expiry", ErrCorrupt)
	}
	if r.Kind != KindReserve && r.ExpiresAtMs != 0 {
		return fmt.Errorf("%w: expiry on %s", ErrCorrupt, r.Kind)
	}
	if r.LimitPerUser < 0 || r.LimitPerUser > LimitMax || (r.Kind != KindSetTotal && r.LimitPerUser != 0) {
		return fmt.Errorf("%w: limit %d on %s", ErrCorrupt, r.LimitPerUser, r.Kind)
	}
	if !ValidID(r.RequestID) {
		return fmt.Errorf("%w: request id %q", ErrCorrupt, r.RequestID)
	}
	if (r.Kind == KindReturn) != (r.RefID != "") || (r.RefID != "" && !ValidID(r.RefID)) {
		return fmt.Errorf("%w: ref id %q on %s", ErrCorrupt, r.RefID, r.Kind)
	}
	if r.UserID != "" && !ValidID(r.UserID) {
		return fmt.Errorf("%w: user id %q", ErrCorrupt, r.UserID)
	}
	if len(r.Items) == 0 || len(r.Items) > ItemsMax {
		return fmt.Errorf("%w: %d items", ErrCorrupt, len(r.Items))
	}
	if r.Kind == KindSetTotal && len(r.Items) != 1 {
		return fmt.Errorf("%w: set_total with %d items", ErrCorrupt, len(r.Items))
	}
	for i, it := range r.Items {
		if !ValidID(it.SKU) {
			return fmt.Errorf("%w: sku %q", ErrCorrupt, it.SKU)
		}
		switch {
		case r.Kind == KindSetTotal:
			if it.Qty < -TotalMax || it.Qty > TotalMax {
				return fmt.Errorf("%w: total change %d", ErrCorrupt, it.Qty)
			}
		case it.Qty <= 0 || it.Qty > QtyMax:
			return fmt.Errorf("%w: qty %d on %s", ErrCorrupt, it.Qty, r.Kind)
		}
		for _, prev := range r.Items[:i] {
			if prev.SKU == it.SKU {
				return fmt.Errorf("%w: sku %q twice", ErrCorrupt, it.SKU)
			}
		}
	}
	return nil
}

// ValidID reports whether s is 1..64 bytes of [A-Za-z0-9._:-].
func ValidID(s string) bool {
	if len(s) == 0 || len(s) > IDBytesMax {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-') {
			return false
		}
	}
	return true
}

// Encode appends the record's encoding to dst and returns it. It panics on a
// record that breaks the format: building one is a programmer error.
func (r *Record) Encode(dst []byte) []byte {
	if err := r.Validate(); err != nil {
		panic(fmt.Sprintf("wal: encoding invalid record %+v: %v", *r, err))
	}
	start := len(dst)
	dst = append(dst, FormatVersion, byte(r.Kind))
	dst = binary.AppendUvarint(dst, uint64(r.TimeMs))
	dst = appendString(dst, r.RequestID)
	dst = appendString(dst, r.RefID)
	dst = appendString(dst, r.UserID)
	dst = binary.BigEndian.AppendUint64(dst, r.BodyHash)
	dst = binary.AppendUvarint(dst, uint64(r.ExpiresAtMs))
	dst = binary.AppendUvarint(dst, uint64(r.LimitPerUser))
	dst = append(dst, byte(len(r.Items)))
	for _, it := range r.Items {
		dst = appendString(dst, it.SKU)
		dst = binary.AppendVarint(dst, it.Qty)
	}
	return binary.BigEndian.AppendUint32(dst, crc32.Checksum(dst[start:], castagnoli))
}

func appendString(dst []byte, s string) []byte {
	dst = append(dst, byte(len(s)))
	return append(dst, s...)
}

// Decode parses b into r, reusing r.Items' storage. It validates the checksum,
// every length and every field (Validate), and that nothing trails the record.
// Strings in r are copies: r does not keep b.
func (r *Record) Decode(b []byte) error {
	if len(b) < 2+4 || len(b) > RecordBytesMax {
		return fmt.Errorf("%w: %d bytes", ErrCorrupt, len(b))
	}
	body, sum := b[:len(b)-4], binary.BigEndian.Uint32(b[len(b)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return fmt.Errorf("%w: checksum mismatch", ErrCorrupt)
	}
	if body[0] != FormatVersion {
		return fmt.Errorf("%w: format version %d", ErrCorrupt, body[0])
	}
	d := decoder{b: body[2:]}
	r.Kind = Kind(body[1])
	r.TimeMs = int64(d.uvarint())
	r.RequestID = d.str()
	r.RefID = d.str()
	r.UserID = d.str()
	r.BodyHash = d.u64()
	r.ExpiresAtMs = int64(d.uvarint())
	r.LimitPerUser = int64(d.uvarint())
	n := int(d.byte())
	if n > ItemsMax {
		return fmt.Errorf("%w: %d items", ErrCorrupt, n)
	}
	r.Items = r.Items[:0]
	for i := 0; i < n && d.err == nil; i++ {
		sku := d.str()
		r.Items = append(r.Items, Item{SKU: sku, Qty: d.varint()})
	}
	if d.err != nil {
		return d.err
	}
	if len(d.b) != 0 {
		return fmt.Errorf("%w: %d trailing bytes", ErrCorrupt, len(d.b))
	}
	return r.Validate()
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: truncated %s", ErrCorrupt, what)
	}
	d.b = nil
}

func (d *decoder) byte() byte {
	if len(d.b) < 1 {
		d.fail("byte")
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

// uvarint and varint accept only the minimal encoding, so the format is
// canonical: one record has exactly one encoding.
func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 || v > timeMsMax || n != uvarintLen(v) {
		d.fail("uvarint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func uvarintLen(v uint64) int {
	n := 1
	for ; v >= 0x80; v >>= 7 {
		n++
	}
	return n
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 || n != uvarintLen(uint64(v<<1)^uint64(v>>63)) {
		d.fail("varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) u64() uint64 {
	if len(d.b) < 8 {
		d.fail("u64")
		return 0
	}
	v := binary.BigEndian.Uint64(d.b)
	d.b = d.b[8:]
	return v
}

func (d *decoder) str() string {
	n := int(d.byte())
	if n > IDBytesMax || len(d.b) < n {
		d.fail("string")
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}
